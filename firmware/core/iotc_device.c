#include "iotc_device.h"
#include "iotc_topic.h"

#include <string.h>

#define CORRELATION_KEY "correlation_id"
#define RAW(w, lit) iotc_jw_raw((w), (lit), sizeof(lit) - 1)

/* One request being handled. */
typedef struct {
    iotc_device *dev;
    iotc_json_doc req;
    iotc_json_writer w;
    int complete;   /* the handler wrote a whole object (an echo): no correlation id to append */
    int notify;     /* publish the keyword notification after the reply */
    int reboot;     /* ask the port to restart after the reply */
} call;

static void log_event(const iotc_device *d, int level, const char *event, const char *detail)
{
    if (d->hal->log) d->hal->log(d->hal->ctx, level, event, detail);
}

static int id_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == ':';
}

int iotc_device_init(iotc_device *dev, const iotc_hal *hal, const char *id, const char *recipient)
{
    size_t n = strlen(id), i, r;
    memset(dev, 0, sizeof *dev);
    if (n == 0 || n > IOTC_MAX_DEVICE_ID) return -1;
    for (i = 0; i < n; i++)
        if (!id_char_ok(id[i])) return -1;
    if (recipient == NULL) recipient = IOTC_DEFAULT_RECIPIENT;
    r = strlen(recipient);
    if (r > IOTC_MAX_RECIPIENT) return -1;
    dev->hal = hal;
    memcpy(dev->id, id, n + 1);
    dev->id_len = n;
    memcpy(dev->recipient, recipient, r + 1);
    return 0;
}

int iotc_device_subscribe(iotc_device *dev)
{
    if (iotc_topic_filter(dev->id, dev->id_len, dev->topic, sizeof dev->topic) < 0) return -1;
    return dev->hal->subscribe(dev->hal->ctx, dev->topic);
}

/* ------------------------------------------------------------------------------------------------
 * Field readers with simulators/device.py's rules. */

/* _as_int: true/false, integral numbers, and numeric strings (whitespace trimmed). */
static int as_int(call *c, int tok, int64_t *out)
{
    const iotc_json_tok *t = &c->req.toks[tok];
    char text[40];
    long n;
    switch (t->type) {
    case IOTC_JSON_TRUE: *out = 1; return 0;
    case IOTC_JSON_FALSE: *out = 0; return 0;
    case IOTC_JSON_NUMBER: return iotc_json_number_int(&c->req, tok, out) == IOTC_INT_OK ? 0 : -1;
    case IOTC_JSON_STRING:
        n = iotc_json_str_decode(&c->req, tok, text, sizeof text);
        return n >= 0 && iotc_text_int(text, (size_t)n, out) == IOTC_INT_OK ? 0 : -1;
    default: return -1;
    }
}

static int required(call *c, const char *key) { return iotc_json_get(&c->req, 0, key); }

static int gpio_number(call *c, int64_t *number)
{
    int tok = required(c, "number");
    return tok < 0 || as_int(c, tok, number) || *number < 0 ? -1 : 0;
}

static void open_value(call *c) { RAW(&c->w, "{\"value\": "); }

static void open_gpio(call *c, int64_t number, int value)
{
    RAW(&c->w, "{\"number\": ");
    iotc_jw_int(&c->w, number);
    RAW(&c->w, ", \"value\": ");
    iotc_jw_int(&c->w, value);
}

/* The text a value shows on the UART: a string decoded, anything else as JSON (json.dumps). */
static long value_text(call *c, int tok)
{
    iotc_device *d = c->dev;
    iotc_json_writer tw;
    if (c->req.toks[tok].type == IOTC_JSON_STRING) return iotc_json_str_decode(&c->req, tok, d->text, sizeof d->text);
    iotc_jw_init(&tw, d->text, sizeof d->text);
    iotc_jw_value(&tw, &c->req, tok);
    return iotc_jw_finish(&tw);
}

static int contains(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle), i;
    for (i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * The APIs. Each answers IOTC_REPLIED with an open reply object in c->w, or another outcome. */

static int api_get_status(call *c)
{
    RAW(&c->w, "{\"value\": \"running\"");
    return IOTC_REPLIED;
}

static int api_set_status(call *c)
{
    int tok = iotc_json_get(&c->req, 0, "value");
    if (tok >= 0 && iotc_json_str_eq(&c->req, tok, "restart", 7)) c->reboot = 1;
    else log_event(c->dev, IOTC_LOG_INFO, "set_status without \"restart\" answered like restart", "set_status");
    RAW(&c->w, "{\"value\": \"restarting\"");
    return IOTC_REPLIED;
}

static int api_get_gpio(call *c)
{
    int64_t number;
    int value = 0;
    if (gpio_number(c, &number)) return IOTC_IGNORED_INVALID;
    if (c->dev->hal->gpio_read(c->dev->hal->ctx, number, &value)) return IOTC_FAILED_HAL;
    open_gpio(c, number, value ? 1 : 0);
    return IOTC_REPLIED;
}

static int api_set_gpio(call *c)
{
    int64_t number, value;
    int tok;
    if (gpio_number(c, &number)) return IOTC_IGNORED_INVALID;
    tok = required(c, "value");
    if (tok < 0 || as_int(c, tok, &value)) return IOTC_IGNORED_INVALID;
    if (c->dev->hal->gpio_write(c->dev->hal->ctx, number, value ? 1 : 0)) return IOTC_FAILED_HAL;
    open_gpio(c, number, value ? 1 : 0);
    return IOTC_REPLIED;
}

static int api_get_rtc(call *c)
{
    int64_t now;
    if (c->dev->hal->rtc_get(c->dev->hal->ctx, &now)) return IOTC_FAILED_HAL;
    open_value(c);
    iotc_jw_int(&c->w, now);
    return IOTC_REPLIED;
}

static int api_set_rtc(call *c)
{
    /* The reply echoes whatever was sent (as the simulators do); an integer also sets the clock. */
    int64_t epoch;
    int tok = required(c, "value");
    if (tok < 0) return IOTC_IGNORED_INVALID;
    if (c->req.toks[tok].type != IOTC_JSON_TRUE && c->req.toks[tok].type != IOTC_JSON_FALSE && as_int(c, tok, &epoch) == 0 &&
        c->dev->hal->rtc_set(c->dev->hal->ctx, epoch))
        return IOTC_FAILED_HAL;
    open_value(c);
    iotc_jw_value(&c->w, &c->req, tok);
    return IOTC_REPLIED;
}

static size_t bounded_len(const char *s, size_t cap)
{
    size_t n = 0;
    while (n < cap && s[n]) n++;
    return n;
}

static int net_value(call *c, int which)
{
    iotc_netinfo info;
    const char *s;
    memset(&info, 0, sizeof info);
    if (c->dev->hal->net_info(c->dev->hal->ctx, &info)) return IOTC_FAILED_HAL;
    s = which == 0 ? info.mac : which == 1 ? info.ip : which == 2 ? info.subnet : info.gateway;
    open_value(c);
    iotc_jw_str(&c->w, s, bounded_len(s, sizeof info.mac));
    return IOTC_REPLIED;
}

static int api_get_mac(call *c) { return net_value(c, 0); }
static int api_get_ip(call *c) { return net_value(c, 1); }
static int api_get_subnet(call *c) { return net_value(c, 2); }
static int api_get_gateway(call *c) { return net_value(c, 3); }

static int api_write_uart(call *c)
{
    int tok = required(c, "value");
    long n;
    if (tok < 0) return IOTC_IGNORED_INVALID;
    n = value_text(c, tok);
    if (n < 0) return IOTC_FAILED_REPLY;
    c->dev->hal->uart_write(c->dev->hal->ctx, c->dev->text, (size_t)n);
    c->notify = contains(c->dev->text, (size_t)n, IOTC_KEYWORD);
    open_value(c);
    iotc_jw_value(&c->w, &c->req, tok);
    return IOTC_REPLIED;
}

static int api_trigger_notification(call *c)
{
    int tok = iotc_json_get(&c->req, 0, "recipient");
    if (tok >= 0 && iotc_json_str_eq(&c->req, tok, c->dev->id, c->dev->id_len)) {
        /* Device-to-device delivery: shown, not answered. */
        static const char prefix[] = "notification: ";
        int msg = iotc_json_get(&c->req, 0, "message");
        long n = msg >= 0 ? value_text(c, msg) : 0;
        if (n >= 0 && (size_t)n + sizeof prefix <= sizeof c->dev->reply) {
            memcpy(c->dev->reply, prefix, sizeof prefix - 1);
            memcpy(c->dev->reply + sizeof prefix - 1, c->dev->text, (size_t)n);
            c->dev->hal->uart_write(c->dev->hal->ctx, c->dev->reply, sizeof prefix - 1 + (size_t)n);
        }
        return IOTC_SILENT;
    }
    iotc_jw_value(&c->w, &c->req, 0);
    c->complete = 1;
    return IOTC_REPLIED;
}

static const struct {
    const char *name;
    int (*handler)(call *c);
} APIS[] = {
    {"get_status", api_get_status},   {"set_status", api_set_status}, {"get_gpio", api_get_gpio},
    {"set_gpio", api_set_gpio},       {"get_rtc", api_get_rtc},       {"set_rtc", api_set_rtc},
    {"get_mac", api_get_mac},         {"get_ip", api_get_ip},         {"get_subnet", api_get_subnet},
    {"get_gateway", api_get_gateway}, {"write_uart", api_write_uart}, {"trigger_notification", api_trigger_notification},
};

/* ------------------------------------------------------------------------------------------------ */

static int is_blank(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!iotc_is_py_space((unsigned char)s[i])) return 0;
    return 1;
}

static int publish(iotc_device *d, const char *api, const char *payload, size_t len)
{
    if (iotc_topic_reply(d->id, d->id_len, api, d->topic, sizeof d->topic) < 0) return -1;
    return d->hal->publish(d->hal->ctx, d->topic, payload, len);
}

static int finish(iotc_device *d, int outcome)
{
    d->counts[outcome]++;
    if (outcome != IOTC_REPLIED && outcome != IOTC_SILENT)
        log_event(d, IOTC_LOG_WARNING, iotc_outcome_name(outcome), d->api); /* api "" for a foreign topic */
    return outcome;
}

/* The request's correlation id, decoded, if it is one the device remembers (a string that fits);
 * its length, or -1. */
static long remembered_id(const call *c, char *out)
{
    int tok = iotc_json_get(&c->req, 0, CORRELATION_KEY);
    return tok < 0 ? -1 : iotc_json_str_decode(&c->req, tok, out, IOTC_MAX_CORRELATION);
}

static int seen_recently(const iotc_device *d, const char *id, long n)
{
    unsigned i;
    for (i = 0; i < d->recent_count; i++)
        if (d->recent_len[i] == (uint8_t)n && memcmp(d->recent[i], id, (size_t)n) == 0) return 1;
    return 0;
}

static void remember(iotc_device *d, const char *id, long n)
{
    memcpy(d->recent[d->recent_next], id, (size_t)n);
    d->recent_len[d->recent_next] = (uint8_t)n;
    d->recent_next = (uint8_t)((d->recent_next + 1) % IOTC_RECENT_IDS);
    if (d->recent_count < IOTC_RECENT_IDS) d->recent_count++;
}

int iotc_device_handle(iotc_device *d, const char *topic, size_t topic_len, const char *payload, size_t len)
{
    call c;
    size_t i;
    int (*handler)(call *) = NULL;
    int outcome, corr;
    long n, id_len;
    char id[IOTC_MAX_CORRELATION];

    d->api[0] = '\0';
    if (iotc_topic_api(d->id, d->id_len, topic, topic_len, d->api, sizeof d->api) < 0)
        return finish(d, IOTC_IGNORED_TOPIC);
    for (i = 0; i < sizeof APIS / sizeof APIS[0]; i++)
        if (strcmp(APIS[i].name, d->api) == 0) handler = APIS[i].handler;
    if (handler == NULL) return finish(d, IOTC_IGNORED_API);
    if (len > IOTC_MAX_PAYLOAD) return finish(d, IOTC_IGNORED_TOO_LONG);
    /* An empty (or blank) payload counts as {}. */
    if (is_blank(payload, len)) payload = "{}", len = 2;
    if (iotc_json_parse(&c.req, payload, len, d->toks, IOTC_JSON_MAX_TOKENS) != IOTC_JSON_OK ||
        d->toks[0].type != IOTC_JSON_OBJECT)
        return finish(d, IOTC_IGNORED_MALFORMED);

    c.dev = d;
    c.complete = c.notify = c.reboot = 0;
    iotc_jw_init(&c.w, d->reply, sizeof d->reply);
    id_len = remembered_id(&c, id);
    if (id_len >= 0 && seen_recently(d, id, id_len)) return finish(d, IOTC_REPEATED);
    outcome = handler(&c);
    if (id_len >= 0 && (outcome == IOTC_REPLIED || outcome == IOTC_SILENT)) remember(d, id, id_len);
    if (outcome != IOTC_REPLIED) return finish(d, outcome);
    if (!c.complete) {
        corr = iotc_json_get(&c.req, 0, CORRELATION_KEY);
        if (corr >= 0) {
            RAW(&c.w, ", \"" CORRELATION_KEY "\": ");
            iotc_jw_value(&c.w, &c.req, corr);
        }
        RAW(&c.w, "}");
    }
    n = iotc_jw_finish(&c.w);
    if (n < 0 || publish(d, d->api, d->reply, (size_t)n)) return finish(d, IOTC_FAILED_REPLY);
    if (c.notify) {
        iotc_jw_init(&c.w, d->reply, sizeof d->reply);
        RAW(&c.w, "{\"recipient\": ");
        iotc_jw_str(&c.w, d->recipient, strlen(d->recipient));
        RAW(&c.w, ", \"message\": \"" IOTC_KEYWORD_MESSAGE "\"}");
        n = iotc_jw_finish(&c.w);
        if (n < 0 || publish(d, "trigger_notification", d->reply, (size_t)n))
            log_event(d, IOTC_LOG_WARNING, "keyword notification not sent", "trigger_notification");
    }
    if (c.reboot) d->hal->reboot(d->hal->ctx);
    return finish(d, IOTC_REPLIED);
}

const char *iotc_outcome_name(int outcome)
{
    static const char *const names[IOTC_OUTCOMES] = {
        "replied", "silent", "ignored: topic", "ignored: unknown api", "ignored: payload too long",
        "ignored: malformed JSON", "ignored: invalid request", "failed: hardware", "failed: reply",
        "ignored: repeated correlation id",
    };
    return outcome >= 0 && outcome < IOTC_OUTCOMES ? names[outcome] : "?";
}
