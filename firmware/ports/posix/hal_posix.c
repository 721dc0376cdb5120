#include "hal_posix.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

void posix_log(const char *fmt, ...)
{
    va_list ap;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s iotcloud-device: ", stamp);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* --- GPIO: pins are whatever numbers the platform names, up to POSIX_GPIO_SLOTS of them ------- */

static int gpio_slot(posix_board *b, int64_t number)
{
    int i;
    for (i = 0; i < b->gpio_used; i++)
        if (b->gpio_number[i] == number) return i;
    return -1;
}

static int gpio_read(void *ctx, int64_t number, int *value)
{
    posix_board *b = ctx;
    int i = gpio_slot(b, number);
    *value = i < 0 ? 0 : b->gpio_value[i];
    return 0;
}

static int gpio_write(void *ctx, int64_t number, int value)
{
    posix_board *b = ctx;
    int i = gpio_slot(b, number);
    if (i < 0) {
        if (b->gpio_used == POSIX_GPIO_SLOTS) return -1;
        i = b->gpio_used++;
        b->gpio_number[i] = number;
    }
    b->gpio_value[i] = value;
    return 0;
}

static int rtc_get(void *ctx, int64_t *epoch)
{
    *epoch = (int64_t)time(NULL) + ((posix_board *)ctx)->rtc_offset;
    return 0;
}

static int rtc_set(void *ctx, int64_t epoch)
{
    posix_board *b = ctx;
    if (b->settable_rtc) b->rtc_offset = epoch - (int64_t)time(NULL);
    return 0;
}

/* --- Network facts, found like simulators/device.py's host_network_info ----------------------- */

static void default_route(char *iface, size_t cap, char *gateway)
{
    char line[256], name[IFNAMSIZ + 1];
    unsigned long dest, gw, flags;
    FILE *f = fopen("/proc/net/route", "r");
    if (!f) return;
    if (fgets(line, sizeof line, f)) {
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "%16s %lx %lx %lx", name, &dest, &gw, &flags) == 4 && dest == 0) {
                snprintf(iface, cap, "%s", name);
                if (flags & 0x2) {
                    struct in_addr a;
                    a.s_addr = (in_addr_t)gw;
                    inet_ntop(AF_INET, &a, gateway, 16);
                }
                break;
            }
        }
    }
    fclose(f);
}

static void first_interface(char *iface, size_t cap)
{
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    if (!d) return;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "lo") == 0) continue;
        if (strlen(e->d_name) < cap && (iface[0] == '\0' || strcmp(e->d_name, iface) < 0))
            memcpy(iface, e->d_name, strlen(e->d_name) + 1);
    }
    closedir(d);
}

static void if_addr(const char *iface, unsigned long request, char *out)
{
    struct ifreq r;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return;
    memset(&r, 0, sizeof r);
    snprintf(r.ifr_name, sizeof r.ifr_name, "%s", iface);
    if (ioctl(s, request, &r) == 0)
        inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)&r.ifr_addr)->sin_addr, out, 16);
    close(s);
}

static void host_network_info(iotc_netinfo *n)
{
    char iface[IFNAMSIZ + 1] = "", path[64 + IFNAMSIZ], *last_dot;
    FILE *f;
    size_t i;
    default_route(iface, sizeof iface, n->gateway);
    if (iface[0] == '\0') first_interface(iface, sizeof iface);
    if (iface[0]) {
        if_addr(iface, SIOCGIFADDR, n->ip);
        if_addr(iface, SIOCGIFNETMASK, n->subnet);
        snprintf(path, sizeof path, "/sys/class/net/%s/address", iface);
        if ((f = fopen(path, "r")) != NULL) {
            if (fgets(n->mac, sizeof n->mac, f) == NULL) n->mac[0] = '\0';
            n->mac[strcspn(n->mac, "\n")] = '\0';
            fclose(f);
        }
    }
    if (n->mac[0] == '\0' || strcmp(n->mac, "00:00:00:00:00:00") == 0)
        snprintf(n->mac, sizeof n->mac, "02:00:00:00:00:01"); /* the simulator uses uuid.getnode() here */
    for (i = 0; n->mac[i]; i++)
        if (n->mac[i] >= 'a' && n->mac[i] <= 'f') n->mac[i] = (char)(n->mac[i] - 'a' + 'A');
    if (n->ip[0] == '\0') snprintf(n->ip, sizeof n->ip, "127.0.0.1");
    if (n->subnet[0] == '\0') snprintf(n->subnet, sizeof n->subnet, strncmp(n->ip, "127.", 4) ? "255.255.255.0" : "255.0.0.0");
    if (n->gateway[0] == '\0') {
        if (strncmp(n->ip, "127.", 4) == 0) snprintf(n->gateway, sizeof n->gateway, "127.0.0.1");
        else {
            memcpy(n->gateway, n->ip, sizeof n->gateway);
            last_dot = strrchr(n->gateway, '.');
            if (last_dot) snprintf(last_dot, sizeof n->gateway - (size_t)(last_dot - n->gateway), ".1");
        }
    }
}

static int net_info(void *ctx, iotc_netinfo *out)
{
    *out = ((posix_board *)ctx)->net;
    return 0;
}

static void uart_write(void *ctx, const char *text, size_t len)
{
    printf("[%s] %.*s\n", ((posix_board *)ctx)->device_id, (int)len, text);
    fflush(stdout);
}

static void reboot(void *ctx)
{
    /* A process cannot power-cycle itself usefully: the restart is acknowledged and the state kept. */
    ((posix_board *)ctx)->restart_requested++;
    posix_log("%s: restart requested (simulated: state kept)", ((posix_board *)ctx)->device_id);
}

static int publish(void *ctx, const char *topic, const char *payload, size_t len)
{
    posix_board *b = ctx;
    return mosquitto_publish(b->mosq, NULL, topic, (int)len, payload, 1, false) == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static int subscribe(void *ctx, const char *filter)
{
    posix_board *b = ctx;
    return mosquitto_subscribe(b->mosq, NULL, filter, 1) == MOSQ_ERR_SUCCESS ? 0 : -1;
}

static void log_event(void *ctx, int level, const char *event, const char *detail)
{
    if (level >= IOTC_LOG_INFO)
        posix_log("%s: %s (%s)", ((posix_board *)ctx)->device_id, event, detail[0] ? detail : "not for this device");
}

void posix_hal_init(iotc_hal *hal, posix_board *board, const char *device_id)
{
    memset(board, 0, sizeof *board);
    board->device_id = device_id;
    host_network_info(&board->net);
    hal->ctx = board;
    hal->gpio_read = gpio_read;
    hal->gpio_write = gpio_write;
    hal->rtc_get = rtc_get;
    hal->rtc_set = rtc_set;
    hal->net_info = net_info;
    hal->uart_write = uart_write;
    hal->reboot = reboot;
    hal->publish = publish;
    hal->subscribe = subscribe;
    hal->log = log_event;
}
