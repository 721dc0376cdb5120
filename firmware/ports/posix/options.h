/* Command line and credentials file of the POSIX device. */
#ifndef IOTC_POSIX_OPTIONS_H
#define IOTC_POSIX_OPTIONS_H

#include <stddef.h>

#define PEM_MAX 16384

typedef struct {
    char device_id[129];
    char host[256];
    int port;             /* 0: 8883 with TLS, 1883 without */
    int tls;
    char ca[PEM_MAX], cert[PEM_MAX], key[PEM_MAX];
    char username[128], password[128]; /* plain (tls false) test brokers only */
    char recipient[129];
    int keepalive;
    int settable_rtc;     /* set_rtc moves the device clock (off: the simulators' seed behaviour) */
    double max_backoff;
} device_options;

/* Fills `o` from argv (and the --credentials file); prints the problem and returns -1 on error,
 * 1 when --help was asked. */
int options_parse(device_options *o, int argc, char **argv);

#endif
