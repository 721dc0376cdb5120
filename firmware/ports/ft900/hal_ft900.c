/* The HAL on Bridgetek's FT900 SDK (FT9xx Toolchain): GPIO and RTC drivers from <ft900.h>, the
 * network facts from the SDK's lwIP netif wrapper (net.h), UART0 as the console, and the MQTT
 * client of the SDK's lib/iot (lwIP MQTT over ALTCP_TLS with mbedTLS), as in ft90x_iot_brtcloud.
 *
 * NOT COMPILED HERE: the FT9xx Toolchain (ft32-elf-gcc) and the SDK are not in Debian. This file
 * is kept thin on purpose; everything that can be tested lives in ../../core. See README.md. */
#include <ft900.h>
#include <string.h>
#include <time.h>

#include "FreeRTOS.h"
#include "task.h"
#include "net.h"
#include "iot/iot.h"

#include "hal_ft900.h"

/* GPIO: the seed firmware sets a pad to output before reading or writing it (protocol reference
 * §5.3); the FT900 has 67 pads (0..66). */
#define FT900_PADS 67

static int gpio_read_pad(void *ctx, int64_t number, int *value)
{
    (void)ctx;
    if (number < 0 || number >= FT900_PADS) return -1;
    gpio_dir((uint8_t)number, pad_dir_output);
    *value = gpio_read((uint8_t)number) ? 1 : 0;
    return 0;
}

static int gpio_write_pad(void *ctx, int64_t number, int value)
{
    (void)ctx;
    if (number < 0 || number >= FT900_PADS) return -1;
    gpio_dir((uint8_t)number, pad_dir_output);
    gpio_write((uint8_t)number, value ? 1 : 0);
    return 0;
}

/* RTC: the MM900EV boards have the internal RTC; the later "IoT board" has none (the seed
 * firmware had it under #if 0), so it is optional: rtc_present = 0 makes get_rtc unanswered. */
static int rtc_get(void *ctx, int64_t *epoch)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!((ft900_board *)ctx)->rtc_present || rtc_read(&tm) != 0) return -1;
    *epoch = (int64_t)mktime(&tm); /* the board keeps UTC: no TZ is set */
    return 0;
}

static int rtc_set(void *ctx, int64_t epoch)
{
    time_t t = (time_t)epoch;
    struct tm *tm;
    if (!((ft900_board *)ctx)->rtc_present || (int64_t)t != epoch) return -1; /* 32-bit time_t */
    tm = gmtime(&t);
    return tm != NULL && rtc_write(tm) == 0 ? 0 : -1;
}

static void dotted(char out[16], ip_addr_t addr)
{
    const char *s = inet_ntoa(addr);
    size_t n = strlen(s);
    if (n > 15) n = 15;
    memcpy(out, s, n);
    out[n] = '\0';
}

static int net_info(void *ctx, iotc_netinfo *out)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t *mac = net_get_mac();
    int i;
    (void)ctx;
    for (i = 0; i < 6; i++) {
        out->mac[i * 3] = hex[mac[i] >> 4];
        out->mac[i * 3 + 1] = hex[mac[i] & 0xf];
        out->mac[i * 3 + 2] = i < 5 ? ':' : '\0';
    }
    dotted(out->ip, net_get_ip());
    dotted(out->subnet, net_get_netmask());
    dotted(out->gateway, net_get_gateway());
    return 0;
}

static void uart_text(void *ctx, const char *text, size_t len)
{
    (void)ctx;
    uart_writen(UART0, (uint8_t *)text, len);
    uart_puts(UART0, "\r\n");
}

static void restart_task(void *param)
{
    (void)param;
    vTaskDelay(pdMS_TO_TICKS(1000)); /* let the reply leave first, as the seed firmware did */
    chip_reboot();
}

static void reboot(void *ctx)
{
    (void)ctx;
    xTaskCreate(restart_task, "restart", 64, NULL, 3, NULL);
}

static int publish(void *ctx, const char *topic, const char *payload, size_t len)
{
    ft900_board *b = ctx;
    return iot_publish(b->handle, topic, payload, (int)len, 1) == 0 ? 0 : -1;
}

static int subscribe(void *ctx, const char *filter)
{
    ft900_board *b = ctx;
    return iot_subscribe(b->handle, filter, b->on_message, 1) == 0 ? 0 : -1;
}

void ft900_hal_init(iotc_hal *hal, ft900_board *board)
{
    hal->ctx = board;
    hal->gpio_read = gpio_read_pad;
    hal->gpio_write = gpio_write_pad;
    hal->rtc_get = rtc_get;
    hal->rtc_set = rtc_set;
    hal->net_info = net_info;
    hal->uart_write = uart_text;
    hal->reboot = reboot;
    hal->publish = publish;
    hal->subscribe = subscribe;
    hal->log = NULL;
}
