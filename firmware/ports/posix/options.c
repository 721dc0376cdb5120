#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iotc_json.h"

static const char USAGE[] =
    "usage: iotcloud-device [--credentials FILE] [--id ID] [--host HOST] [--port PORT]\n"
    "                       [--ca PEM] [--cert PEM] [--key PEM] [--plain] [--recipient WHO]\n"
    "                       [--settable-rtc]"
    "                       [--keepalive SECONDS] [--max-backoff SECONDS]\n"
    "One iotcloud device over MQTT 3.1.1 with a TLS client certificate (client id = device id, no\n"
    "username): answers <id>/<api> requests on server/<id>/<api>. --credentials reads the JSON that\n"
    "POST /v1/devices answers (device_id, ca, certificate, private_key, host, mqtt_port, tls);\n"
    "the other options override it. set_rtc is echoed and leaves the clock alone, as the simulators\n"
    "do, unless --settable-rtc (then the device keeps its own clock offset in memory).\n"
    "Stops cleanly on SIGTERM/SIGINT.\n";

/* Whole file into buf (NUL-terminated); its length or -1. */
static long read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f) { fprintf(stderr, "iotcloud-device: cannot read %s\n", path); return -1; }
    n = fread(buf, 1, cap, f);
    fclose(f);
    if (n >= cap) { fprintf(stderr, "iotcloud-device: %s is larger than %zu bytes\n", path, cap - 1); return -1; }
    buf[n] = '\0';
    return (long)n;
}

static int copy_string(const iotc_json_doc *doc, int tok, char *out, size_t cap, const char *key)
{
    long n;
    if (tok < 0 || doc->toks[tok].type == IOTC_JSON_NULL) return 0;
    n = iotc_json_str_decode(doc, tok, out, cap - 1);
    if (n < 0 || memchr(out, '\0', (size_t)n)) {
        fprintf(stderr, "iotcloud-device: credentials: \"%s\" must be a string of at most %zu bytes\n", key, cap - 1);
        return -1;
    }
    out[n] = '\0';
    return 0;
}

static int load_credentials(device_options *o, const char *path)
{
    static char text[65536];
    static iotc_json_tok toks[512];
    iotc_json_doc doc;
    int tok, rc;
    int64_t port;
    long n = read_file(path, text, sizeof text);
    if (n < 0) return -1;
    rc = iotc_json_parse(&doc, text, (size_t)n, toks, 512);
    if (rc != IOTC_JSON_OK || toks[0].type != IOTC_JSON_OBJECT) {
        fprintf(stderr, "iotcloud-device: %s is not a JSON object (error %d)\n", path, rc);
        return -1;
    }
    if (iotc_json_get(&doc, 0, "device_id") < 0) {
        fprintf(stderr, "iotcloud-device: 'device_id' missing in %s\n", path);
        return -1;
    }
    if (copy_string(&doc, iotc_json_get(&doc, 0, "device_id"), o->device_id, sizeof o->device_id, "device_id") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "host"), o->host, sizeof o->host, "host") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "ca"), o->ca, sizeof o->ca, "ca") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "certificate"), o->cert, sizeof o->cert, "certificate") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "private_key"), o->key, sizeof o->key, "private_key") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "username"), o->username, sizeof o->username, "username") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "password"), o->password, sizeof o->password, "password") ||
        copy_string(&doc, iotc_json_get(&doc, 0, "notification_recipient"), o->recipient, sizeof o->recipient,
                    "notification_recipient"))
        return -1;
    tok = iotc_json_get(&doc, 0, "mqtt_port");
    if (tok >= 0 && doc.toks[tok].type != IOTC_JSON_NULL) {
        if (iotc_json_number_int(&doc, tok, &port) != IOTC_INT_OK || port <= 0 || port > 65535) {
            fprintf(stderr, "iotcloud-device: 'mqtt_port' must be a port number\n");
            return -1;
        }
        o->port = (int)port;
    }
    tok = iotc_json_get(&doc, 0, "tls");
    if (tok >= 0) o->tls = doc.toks[tok].type != IOTC_JSON_FALSE;
    memset(text, 0, sizeof text); /* the file held the private key */
    return 0;
}

static int number_arg(const char *value, double low, double high, double *out)
{
    char *end;
    double v = strtod(value, &end);
    if (*value == '\0' || *end != '\0' || v < low || v > high) return -1;
    *out = v;
    return 0;
}

int options_parse(device_options *o, int argc, char **argv)
{
    int i;
    double v;
    const char *ca = NULL, *cert = NULL, *key = NULL;
    memset(o, 0, sizeof *o);
    o->tls = 1;
    o->keepalive = 60;
    o->max_backoff = 30;
    /* The credentials file first: every other option overrides it. */
    for (i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--credentials") == 0 && load_credentials(o, argv[i + 1])) return -1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { fputs(USAGE, stdout); return 1; }
        if (strcmp(a, "--plain") == 0) { o->tls = 0; continue; }
        if (strcmp(a, "--settable-rtc") == 0) { o->settable_rtc = 1; continue; }
        if (val == NULL) { fprintf(stderr, "iotcloud-device: %s needs a value\n%s", a, USAGE); return -1; }
        i++;
        if (strcmp(a, "--credentials") == 0) continue;
        else if (strcmp(a, "--id") == 0) snprintf(o->device_id, sizeof o->device_id, "%s", val);
        else if (strcmp(a, "--host") == 0) snprintf(o->host, sizeof o->host, "%s", val);
        else if (strcmp(a, "--recipient") == 0) snprintf(o->recipient, sizeof o->recipient, "%s", val);
        else if (strcmp(a, "--ca") == 0) ca = val;
        else if (strcmp(a, "--cert") == 0) cert = val;
        else if (strcmp(a, "--key") == 0) key = val;
        else if (strcmp(a, "--port") == 0 && number_arg(val, 1, 65535, &v) == 0) o->port = (int)v;
        else if (strcmp(a, "--keepalive") == 0 && number_arg(val, 5, 3600, &v) == 0) o->keepalive = (int)v;
        else if (strcmp(a, "--max-backoff") == 0 && number_arg(val, 0.1, 3600, &v) == 0) o->max_backoff = v;
        else { fprintf(stderr, "iotcloud-device: bad option %s %s\n%s", a, val, USAGE); return -1; }
    }
    if ((ca && read_file(ca, o->ca, sizeof o->ca) < 0) || (cert && read_file(cert, o->cert, sizeof o->cert) < 0) ||
        (key && read_file(key, o->key, sizeof o->key) < 0))
        return -1;
    if (o->device_id[0] == '\0') { fprintf(stderr, "iotcloud-device: give --credentials FILE or --id ID\n%s", USAGE); return -1; }
    if (o->host[0] == '\0') snprintf(o->host, sizeof o->host, "127.0.0.1");
    if (o->port == 0) o->port = o->tls ? 8883 : 1883;
    if (o->tls && (!o->ca[0] || !o->cert[0] || !o->key[0])) {
        fprintf(stderr, "iotcloud-device: TLS needs the CA, the device certificate and its private key "
                        "(--ca/--cert/--key or the credentials file), or --plain for a plain test broker\n");
        return -1;
    }
    return 0;
}
