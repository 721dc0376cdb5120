/* FT900 application: the seed firmware's task loop (wait for DHCP, iot_connect with the
 * certificates linked into flash, subscribe <id>/#, loop while connected, reconnect) with the
 * portable core answering the requests. NOT COMPILED HERE: see README.md. */
#include <ft900.h>
#include <string.h>

#include "FreeRTOS.h"
#include "task.h"
#include "net.h"
#include <iot_config.h>
#include "iot/iot.h"
#include "iot/iot_utils.h"

#include "hal_ft900.h"
#include "iotc_device.h"

#ifndef IOTC_FT900_RECIPIENT
#define IOTC_FT900_RECIPIENT NULL /* the core's default, user@example.com */
#endif
#ifndef IOTC_FT900_RTC
#define IOTC_FT900_RTC 0 /* the FT900 IoT board has no RTC; MM900EV boards do */
#endif

static iotc_device device;   /* all of the core's RAM: no heap */
static iotc_hal hal;
static ft900_board board;

static void on_message(iot_subscribe_rcv *rcv)
{
    /* lib/iot delivers the whole message (payload_len) in its buffer. */
    (void)iotc_device_handle(&device, rcv->topic, strlen(rcv->topic), rcv->payload, rcv->payload_len);
}

static void iot_task(void *param)
{
    static ip_addr_t none = IPADDR4_INIT_BYTES(0, 0, 0, 0);
    (void)param;
    net_init(none, none, none, 1 /* DHCP */, none, NULL, NULL);
    iot_init();
    iot_utils_init();
#if IOTC_FT900_RTC
    rtc_init();
    rtc_option(rtc_option_auto_refresh, 1);
    rtc_start();
    board.rtc_present = 1;
#endif
    board.on_message = on_message;
    ft900_hal_init(&hal, &board);
    if (iotc_device_init(&device, &hal, (const char *)iot_utils_getdeviceid(), IOTC_FT900_RECIPIENT) != 0) {
        uart_puts(UART0, "bad device id in iot_config.h\r\n");
        for (;;) vTaskDelay(pdMS_TO_TICKS(1000));
    }
    for (;;) {
        int waited = 0;
        while (!net_is_ready()) {
            vTaskDelay(pdMS_TO_TICKS(1000));
            if (++waited > 30) chip_reboot(); /* as the seed firmware: no network in 30 s */
        }
        board.handle = iot_connect(iot_utils_getcertificates, iot_utils_getcredentials);
        if (board.handle == NULL) {
            vTaskDelay(pdMS_TO_TICKS(1000));
            continue;
        }
        if (iotc_device_subscribe(&device) == 0) {
            while (net_is_ready() && iot_is_connected(board.handle) == 0) vTaskDelay(pdMS_TO_TICKS(1000));
        }
        iot_disconnect(board.handle);
        board.handle = NULL;
    }
}

int main(void)
{
    sys_reset_all();
    interrupt_disable_globally();
    sys_enable(sys_device_uart0);
    gpio_function(48, pad_func_3);
    gpio_function(49, pad_func_3);
    uart_open(UART0, 1, UART_DIVIDER_19200_BAUD, uart_data_bits_8, uart_parity_none, uart_stop_bits_1);
    net_setup();
    interrupt_enable_globally();
    uart_puts(UART0, "iotcloud device (portable core) on FT900\r\n");
    xTaskCreate(iot_task, "iot_task", 1024, NULL, 2, NULL);
    vTaskStartScheduler();
    for (;;) {
    }
}
