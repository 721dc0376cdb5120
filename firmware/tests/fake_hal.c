#include "fake_hal.h"

#include <string.h>

static int gpio_read(void *ctx, int64_t number, int *value)
{
    fake_board *b = ctx;
    if (number < 0 || number >= FAKE_GPIO_PINS) return -1;
    *value = b->gpio[number];
    return 0;
}

static int gpio_write(void *ctx, int64_t number, int value)
{
    fake_board *b = ctx;
    if (number < 0 || number >= FAKE_GPIO_PINS) return -1;
    b->gpio[number] = value;
    return 0;
}

static int rtc_get(void *ctx, int64_t *epoch)
{
    fake_board *b = ctx;
    *epoch = b->rtc;
    return b->rtc_fails;
}

static int rtc_set(void *ctx, int64_t epoch)
{
    fake_board *b = ctx;
    if (b->rtc_fails) return -1;
    b->rtc = epoch;
    return 0;
}

static int net_info(void *ctx, iotc_netinfo *out)
{
    (void)ctx;
    memcpy(out->mac, "02:00:00:AB:CD:EF", 18);
    memcpy(out->ip, "192.168.1.23", 13);
    memcpy(out->subnet, "255.255.255.0", 14);
    memcpy(out->gateway, "192.168.1.1", 12);
    return 0;
}

static void uart_write(void *ctx, const char *text, size_t len)
{
    fake_board *b = ctx;
    if (len > sizeof b->uart) len = sizeof b->uart;
    memcpy(b->uart, text, len);
    b->uart_len = len;
}

static void reboot(void *ctx) { ((fake_board *)ctx)->reboots++; }

static int publish(void *ctx, const char *topic, const char *payload, size_t len)
{
    fake_board *b = ctx;
    size_t t = strlen(topic);
    if (b->publish_fails || b->publishes >= FAKE_MAX_PUBLISHES || t >= sizeof b->topics[0] || len >= FAKE_TEXT) return -1;
    memcpy(b->topics[b->publishes], topic, t + 1);
    memcpy(b->payloads[b->publishes], payload, len);
    b->payloads[b->publishes][len] = '\0';
    b->lens[b->publishes] = len;
    b->publishes++;
    return 0;
}

static int subscribe(void *ctx, const char *filter)
{
    fake_board *b = ctx;
    size_t n = strlen(filter);
    if (n >= sizeof b->filter) return -1;
    memcpy(b->filter, filter, n + 1);
    b->subscribed++;
    return 0;
}

void fake_board_clear(fake_board *board)
{
    board->publishes = 0;
    board->uart_len = 0;
    board->reboots = 0;
    memset(board->payloads, 0, sizeof board->payloads);
}

void fake_hal_init(iotc_hal *hal, fake_board *board)
{
    memset(board, 0, sizeof *board);
    board->rtc = 1700000000;
    *hal = (iotc_hal){board, gpio_read, gpio_write, rtc_get, rtc_set, net_info, uart_write, reboot, publish, subscribe, NULL};
}
