#ifndef IOTC_HAL_FT900_H
#define IOTC_HAL_FT900_H

#include "iotc_hal.h"
#include "iot/iot.h"

typedef struct {
    iot_handle handle;                 /* from iot_connect() */
    iot_subscribe_cb on_message;       /* hands messages to iotc_device_handle() */
    int rtc_present;
} ft900_board;

void ft900_hal_init(iotc_hal *hal, ft900_board *board);

#endif
