/* The POSIX board: GPIO and RTC kept in memory, the host's network facts, stdout as the UART,
 * and libmosquitto as the transport. */
#ifndef IOTC_HAL_POSIX_H
#define IOTC_HAL_POSIX_H

#include <stdint.h>

#include "iotc_hal.h"

struct mosquitto;

#define POSIX_GPIO_SLOTS 64

typedef struct {
    struct mosquitto *mosq;
    const char *device_id;
    int64_t gpio_number[POSIX_GPIO_SLOTS];
    int gpio_value[POSIX_GPIO_SLOTS];
    int gpio_used;
    int settable_rtc;
    int64_t rtc_offset;      /* with settable_rtc, set_rtc moves the device clock, not the host's */
    iotc_netinfo net;
    int restart_requested;
} posix_board;

void posix_hal_init(iotc_hal *hal, posix_board *board, const char *device_id);
void posix_log(const char *fmt, ...);

#endif
