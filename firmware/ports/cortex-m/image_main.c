/* A whole device image for the size report: the core, one static device, and a HAL whose
 * functions are empty stand-ins for a board's drivers and its MQTT client. */
#include <stddef.h>
#include <stdint.h>

#include "iotc_device.h"

static iotc_device device;
static volatile int gpio[32];
static volatile int64_t rtc;

static int gpio_read(void *ctx, int64_t n, int *v) { (void)ctx; if (n < 0 || n >= 32) return -1; *v = gpio[n]; return 0; }
static int gpio_write(void *ctx, int64_t n, int v) { (void)ctx; if (n < 0 || n >= 32) return -1; gpio[n] = v; return 0; }
static int rtc_get(void *ctx, int64_t *t) { (void)ctx; *t = rtc; return 0; }
static int rtc_set(void *ctx, int64_t t) { (void)ctx; rtc = t; return 0; }
static int net_info(void *ctx, iotc_netinfo *n) { (void)ctx; (void)n; return 0; }
static void uart_write(void *ctx, const char *t, size_t n) { (void)ctx; (void)t; (void)n; }
static void reboot(void *ctx) { (void)ctx; }
static int publish(void *ctx, const char *t, const char *p, size_t n) { (void)ctx; (void)t; (void)p; (void)n; return 0; }
static int subscribe(void *ctx, const char *f) { (void)ctx; (void)f; return 0; }

static const iotc_hal hal = {NULL, gpio_read, gpio_write, rtc_get, rtc_set, net_info, uart_write, reboot, publish, subscribe, NULL};

/* Where a board's MQTT client delivers a message. */
volatile const char *rx_topic, *rx_payload;
volatile size_t rx_topic_len, rx_len;

int main(void)
{
    if (iotc_device_init(&device, &hal, "0123456789abcdef0123456789abcdef01234567", NULL)) return 1;
    (void)iotc_device_subscribe(&device);
    for (;;)
        if (rx_topic) (void)iotc_device_handle(&device, (const char *)rx_topic, rx_topic_len, (const char *)rx_payload, rx_len);
}
