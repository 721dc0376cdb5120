/* What a port provides to the core: the board (GPIO, RTC, network facts, UART, reboot) and the
 * transport (publish/subscribe, QoS 1). Every function returns 0 on success. `ctx` is the port's. */
#ifndef IOTC_HAL_H
#define IOTC_HAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char mac[18];      /* "AA:BB:CC:DD:EE:FF", uppercase as the FT900 prints it */
    char ip[16];       /* dotted quads */
    char subnet[16];
    char gateway[16];
} iotc_netinfo;

enum iotc_log_level { IOTC_LOG_DEBUG, IOTC_LOG_INFO, IOTC_LOG_WARNING };

typedef struct {
    void *ctx;
    int (*gpio_read)(void *ctx, int64_t number, int *value);
    int (*gpio_write)(void *ctx, int64_t number, int value);
    int (*rtc_get)(void *ctx, int64_t *epoch_seconds);
    int (*rtc_set)(void *ctx, int64_t epoch_seconds);
    int (*net_info)(void *ctx, iotc_netinfo *out);
    void (*uart_write)(void *ctx, const char *text, size_t len);
    /* Called after the set_status reply was handed to publish(); the port restarts when it likes. */
    void (*reboot)(void *ctx);
    int (*publish)(void *ctx, const char *topic, const char *payload, size_t len);
    int (*subscribe)(void *ctx, const char *topic_filter);
    /* Optional (may be NULL): one event, a fixed text and a detail (an api name, an error class). */
    void (*log)(void *ctx, int level, const char *event, const char *detail);
} iotc_hal;

#endif
