/* iotcloud-device: the portable core on libmosquitto. One connection, client id = device id,
 * MQTT 3.1.1, persistent session (clean_session false) as simulators/mqtt_device.py; lost
 * connections are retried with exponential backoff and jitter; SIGTERM/SIGINT end it cleanly. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "hal_posix.h"
#include "iotc_device.h"
#include "options.h"
#include "tls.h"

static volatile sig_atomic_t stopping;
static device_options opts;
static posix_board board;
static iotc_hal hal;
static iotc_device device;
static int connected;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Exponential backoff 1, 2, 4 ... max seconds, +-20 % jitter; reset by an accepted CONNACK. */
static double backoff_current = 1.0;
static double backoff_next(void)
{
    double d = backoff_current, jitter = 1.0 + 0.2 * (2.0 * ((double)rand() / RAND_MAX) - 1.0);
    backoff_current = backoff_current * 2 > opts.max_backoff ? opts.max_backoff : backoff_current * 2;
    return d * jitter;
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags)
{
    (void)m; (void)obj;
    if (rc != 0) {
        posix_log("%s: broker refused the connection: %s", opts.device_id, mosquitto_connack_string(rc));
        return;
    }
    connected = 1;
    backoff_current = 1.0;
    posix_log("%s: connected to %s:%d (session_present=%s)", opts.device_id, opts.host, opts.port,
              flags & 1 ? "True" : "False");
    if (iotc_device_subscribe(&device)) posix_log("%s: subscribe failed", opts.device_id);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted)
{
    (void)m; (void)obj; (void)mid;
    if (count < 1 || granted[0] > 2) posix_log("%s: subscription to %s/# refused", opts.device_id, opts.device_id);
    else posix_log("%s: subscribed to %s/# (QoS %d)", opts.device_id, opts.device_id, granted[0]);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m; (void)obj;
    connected = 0;
    posix_log("%s: disconnected (%s)", opts.device_id, rc == 0 ? "on request" : mosquitto_strerror(rc));
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m; (void)obj;
    /* What is not answered is logged by the core through hal.log. */
    (void)iotc_device_handle(&device, msg->topic, strlen(msg->topic), msg->payloadlen ? msg->payload : "",
                             (size_t)msg->payloadlen);
}

/* libmosquitto's own errors (TLS verification, refused connections) say why a connect failed. */
static void on_log(struct mosquitto *m, void *obj, int level, const char *text)
{
    (void)m; (void)obj;
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) posix_log("%s: %s", opts.device_id, text);
}

static void sleep_until(double deadline)
{
    while (!stopping && now_s() < deadline) usleep(50000);
}

int main(int argc, char **argv)
{
    struct mosquitto *m;
    SSL_CTX *ctx = NULL;
    struct sigaction sa;
    int rc, have_socket = 0, first = 1;
    double until;

    rc = options_parse(&opts, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)(time(NULL) ^ getpid()));

    mosquitto_lib_init();
    posix_hal_init(&hal, &board, opts.device_id);
    board.settable_rtc = opts.settable_rtc;
    if (iotc_device_init(&device, &hal, opts.device_id, opts.recipient[0] ? opts.recipient : NULL)) {
        fprintf(stderr, "iotcloud-device: device id must be 1-128 characters of [A-Za-z0-9_-:]\n");
        return 2;
    }
    m = mosquitto_new(opts.device_id, false, NULL);
    if (m == NULL) { fprintf(stderr, "iotcloud-device: mosquitto_new failed\n"); return 1; }
    board.mosq = m;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (opts.tls) {
        /* The broker logs the device in by its certificate's CN: no username or password is sent. */
        ctx = tls_client_context(opts.ca, opts.cert, opts.key, opts.host);
        memset(opts.key, 0, sizeof opts.key);
        if (ctx == NULL) return 2;
        mosquitto_int_option(m, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
        mosquitto_void_option(m, MOSQ_OPT_SSL_CTX, ctx);
    } else if (opts.username[0]) {
        mosquitto_username_pw_set(m, opts.username, opts.password[0] ? opts.password : NULL);
    }
    mosquitto_connect_with_flags_callback_set(m, on_connect);
    mosquitto_log_callback_set(m, on_log);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    mosquitto_message_callback_set(m, on_message);
    posix_log("device %s -> %s://%s:%d", opts.device_id, opts.tls ? "mqtts" : "mqtt", opts.host, opts.port);

    while (!stopping) {
        if (!have_socket) {
            rc = first ? mosquitto_connect(m, opts.host, opts.port, opts.keepalive) : mosquitto_reconnect(m);
            if (rc == MOSQ_ERR_SUCCESS) {
                have_socket = 1;
                first = 0;
                continue;
            }
            until = backoff_next();
            posix_log("%s: connect to %s:%d failed (%s); retrying in %.1f s", opts.device_id, opts.host, opts.port,
                      rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc), until);
            sleep_until(now_s() + until);
            continue;
        }
        rc = mosquitto_loop(m, 200, 1);
        if (rc != MOSQ_ERR_SUCCESS && !stopping) {
            have_socket = 0;
            connected = 0;
            until = backoff_next();
            posix_log("%s: connection lost (%s); reconnecting in %.1f s", opts.device_id, mosquitto_strerror(rc), until);
            sleep_until(now_s() + until);
        }
    }
    /* DISCONNECT (the persistent session stays on the broker), then flush for up to 2 s. */
    if (have_socket) {
        double deadline = now_s() + 2.0;
        mosquitto_disconnect(m);
        while (now_s() < deadline && mosquitto_loop(m, 100, 1) == MOSQ_ERR_SUCCESS) {
        }
    }
    posix_log("%s: stopped: %lu requests answered, %lu ignored", opts.device_id,
              (unsigned long)(device.counts[IOTC_REPLIED] + device.counts[IOTC_SILENT]),
              (unsigned long)(device.counts[IOTC_IGNORED_TOPIC] + device.counts[IOTC_IGNORED_API] +
                              device.counts[IOTC_IGNORED_TOO_LONG] + device.counts[IOTC_IGNORED_MALFORMED] +
                              device.counts[IOTC_IGNORED_INVALID] + device.counts[IOTC_FAILED_HAL] +
                              device.counts[IOTC_FAILED_REPLY] + device.counts[IOTC_REPEATED]));
    mosquitto_destroy(m);
    SSL_CTX_free(ctx);
    mosquitto_lib_cleanup();
    return 0;
}
