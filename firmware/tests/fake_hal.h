/* A board in memory for the unit tests and the fuzzers: it records what the core publishes. */
#ifndef FAKE_HAL_H
#define FAKE_HAL_H

#include "iotc_hal.h"

#define FAKE_MAX_PUBLISHES 4
#define FAKE_GPIO_PINS 32
#define FAKE_TEXT 1024

typedef struct {
    int gpio[FAKE_GPIO_PINS];
    int64_t rtc;
    int rtc_fails;
    int publish_fails;
    int reboots;
    int subscribed;
    char filter[256];
    int publishes;
    char topics[FAKE_MAX_PUBLISHES][256];
    char payloads[FAKE_MAX_PUBLISHES][FAKE_TEXT];
    size_t lens[FAKE_MAX_PUBLISHES];
    char uart[FAKE_TEXT];
    size_t uart_len;
} fake_board;

void fake_hal_init(iotc_hal *hal, fake_board *board);
void fake_board_clear(fake_board *board);

#endif
