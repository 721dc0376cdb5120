/* Unit tests of the core: every API, correlation ids, the keyword trigger, and every class of
 * malformed input. The same file runs on the host (with ASan/UBSan) and on an emulated
 * Cortex-M3 (QEMU, semihosting): it needs only string.h and test_out() from the runner. */
#include <string.h>

#include "fake_hal.h"
#include "iotc_device.h"
#include "iotc_json.h"
#include "iotc_topic.h"
#include "test_core.h"

#define ID "0123456789abcdef0123456789abcdef01234567"

static int failures, checks;
static iotc_device dev;
static fake_board board;
static iotc_hal hal;

static void out_int(long v)
{
    char b[24];
    int i = 23;
    int neg = v < 0;
    unsigned long m = neg ? 0UL - (unsigned long)v : (unsigned long)v;
    b[i] = '\0';
    do { b[--i] = (char)('0' + m % 10); m /= 10; } while (m);
    if (neg) b[--i] = '-';
    test_out(b + i);
}

static void check(int ok, const char *what, int line)
{
    checks++;
    if (ok) return;
    failures++;
    test_out("FAIL line ");
    out_int(line);
    test_out(": ");
    test_out(what);
    test_out("\n");
}
#define CHECK(cond) check((cond) ? 1 : 0, #cond, __LINE__)

static void reset(void)
{
    fake_hal_init(&hal, &board);
    CHECK(iotc_device_init(&dev, &hal, ID, "ops@example.com") == 0);
}

static int request(const char *api, const char *payload)
{
    char topic[128];
    size_t n = strlen(ID);
    memcpy(topic, ID, n);
    topic[n] = '/';
    memcpy(topic + n + 1, api, strlen(api) + 1);
    fake_board_clear(&board);
    return iotc_device_handle(&dev, topic, strlen(topic), payload, strlen(payload));
}

/* The request is answered with exactly `reply` on server/<id>/<api>, and nothing else. */
static void expect_reply(const char *api, const char *payload, const char *reply, int line)
{
    int outcome = request(api, payload);
    check(outcome == IOTC_REPLIED, "replied", line);
    check(board.publishes == 1, "one publish", line);
    check(strncmp(board.topics[0], "server/" ID "/", 48) == 0 && strcmp(board.topics[0] + 48, api) == 0, "reply topic",
          line);
    check(strcmp(board.payloads[0], reply) == 0, reply, line);
    if (strcmp(board.payloads[0], reply) != 0) {
        test_out("   got: ");
        test_out(board.payloads[0]);
        test_out("\n");
    }
}
#define EXPECT(api, payload, reply) expect_reply(api, payload, reply, __LINE__)

static void expect_outcome(const char *api, const char *payload, int outcome, int line)
{
    int got = request(api, payload);
    check(got == outcome, iotc_outcome_name(outcome), line);
    check(board.publishes == 0, "nothing published", line);
    if (got != outcome) {
        test_out("   got: ");
        test_out(iotc_outcome_name(got));
        test_out("\n");
    }
}
#define IGNORED(api, payload, outcome) expect_outcome(api, payload, outcome, __LINE__)

/* The v2 app sent strings; values are normalised to 0/1; booleans and integral numbers count. */
static const char *const PLAIN[][3] = {
    {"set_gpio", "{\"number\": \"7\", \"value\": \" 1 \"}", "{\"number\": 7, \"value\": 1}"},
    {"set_gpio", "{\"number\": 7.0, \"value\": 42}", "{\"number\": 7, \"value\": 1}"},
    {"set_gpio", "{\"number\": 7e0, \"value\": false}", "{\"number\": 7, \"value\": 0}"},
    {"set_gpio", "{\"value\": -3, \"number\": \"+8\"}", "{\"number\": 8, \"value\": 1}"},
    {"get_gpio", "{\"number\": true}", "{\"number\": 1, \"value\": 0}"},
    {"get_mac", "{}", "{\"value\": \"02:00:00:AB:CD:EF\"}"},
    {"get_ip", "{}", "{\"value\": \"192.168.1.23\"}"},
    {"get_subnet", "{}", "{\"value\": \"255.255.255.0\"}"},
    {"get_gateway", "{}", "{\"value\": \"192.168.1.1\"}"},
};

static void test_every_api(void)
{
    size_t i;
    reset();
    EXPECT("get_status", "{}", "{\"value\": \"running\"}");
    EXPECT("get_status", "", "{\"value\": \"running\"}");
    EXPECT("get_status", " \r\n\t", "{\"value\": \"running\"}");
    EXPECT("set_status", "{\"value\": \"restart\"}", "{\"value\": \"restarting\"}");
    CHECK(board.reboots == 1);
    EXPECT("set_status", "{\"value\": \"stop\"}", "{\"value\": \"restarting\"}");
    CHECK(board.reboots == 0);
    EXPECT("get_gpio", "{\"number\": 5}", "{\"number\": 5, \"value\": 0}");
    EXPECT("set_gpio", "{\"number\": 5, \"value\": 1}", "{\"number\": 5, \"value\": 1}");
    CHECK(board.gpio[5] == 1);
    EXPECT("get_gpio", "{\"number\": 5}", "{\"number\": 5, \"value\": 1}");
    for (i = 0; i < sizeof PLAIN / sizeof PLAIN[0]; i++) expect_reply(PLAIN[i][0], PLAIN[i][1], PLAIN[i][2], __LINE__);
    EXPECT("get_rtc", "{}", "{\"value\": 1700000000}");
    EXPECT("set_rtc", "{\"value\": 1571650000}", "{\"value\": 1571650000}");
    CHECK(board.rtc == 1571650000);
    EXPECT("get_rtc", "{}", "{\"value\": 1571650000}");
    EXPECT("set_rtc", "{\"value\": \"soon\"}", "{\"value\": \"soon\"}");
    EXPECT("write_uart", "{\"value\": \"hello device\"}", "{\"value\": \"hello device\"}");
    CHECK(board.uart_len == 12 && memcmp(board.uart, "hello device", 12) == 0);
    EXPECT("write_uart", "{\"value\": [1, {\"a\": null}]}", "{\"value\": [1, {\"a\": null}]}");
    CHECK(board.uart_len == 16 && memcmp(board.uart, "[1, {\"a\": null}]", 16) == 0);
    EXPECT("trigger_notification", "{\"recipient\": \"a@b.c\", \"message\": \"hi\"}",
           "{\"recipient\": \"a@b.c\", \"message\": \"hi\"}");
    EXPECT("trigger_notification", "{\"message\":\"hi\",\"recipient\":\"a@b.c\",\"extra\":[]}",
           "{\"message\": \"hi\", \"recipient\": \"a@b.c\", \"extra\": []}");
    CHECK(dev.counts[IOTC_REPLIED] == 25);
}

static void test_keyword_and_self_notification(void)
{
    reset();
    CHECK(request("write_uart", "{\"value\": \"say Hello World!\"}") == IOTC_REPLIED);
    CHECK(board.publishes == 2);
    CHECK(strcmp(board.payloads[0], "{\"value\": \"say Hello World!\"}") == 0);
    CHECK(strcmp(board.topics[1], "server/" ID "/trigger_notification") == 0);
    CHECK(strcmp(board.payloads[1], "{\"recipient\": \"ops@example.com\", \"message\": \"Hi, How are you today?\"}") == 0);
    /* Escapes decode before the keyword search; JSON values are searched in their JSON text. */
    CHECK(request("write_uart", "{\"value\": \"Hello\\u0020World\"}") == IOTC_REPLIED && board.publishes == 2);
    CHECK(request("write_uart", "{\"value\": {\"k\": \"Hello World\"}}") == IOTC_REPLIED && board.publishes == 2);
    CHECK(request("write_uart", "{\"value\": \"Hello  World\"}") == IOTC_REPLIED && board.publishes == 1);
    /* Addressed to this device: shown on the UART, not answered. */
    CHECK(request("trigger_notification", "{\"recipient\": \"" ID "\", \"message\": \"from a peer\"}") == IOTC_SILENT);
    CHECK(board.publishes == 0);
    CHECK(board.uart_len == 25 && memcmp(board.uart, "notification: from a peer", 25) == 0);
}

static void test_correlation_ids(void)
{
    reset();
    EXPECT("get_status", "{\"correlation_id\": \"c-1\"}", "{\"value\": \"running\", \"correlation_id\": \"c-1\"}");
    EXPECT("set_gpio", "{\"correlation_id\": 7, \"number\": 3, \"value\": 1}",
           "{\"number\": 3, \"value\": 1, \"correlation_id\": 7}");
    EXPECT("get_gpio", "{\"number\": 3, \"correlation_id\": {\"a\": [true]}}",
           "{\"number\": 3, \"value\": 1, \"correlation_id\": {\"a\": [true]}}");
    /* An echo keeps the id where it was. */
    EXPECT("trigger_notification", "{\"correlation_id\": \"z\", \"recipient\": \"r\", \"message\": \"m\"}",
           "{\"correlation_id\": \"z\", \"recipient\": \"r\", \"message\": \"m\"}");
    CHECK(request("write_uart", "{\"value\": \"Hello World\", \"correlation_id\": \"k\"}") == IOTC_REPLIED);
    CHECK(strcmp(board.payloads[0], "{\"value\": \"Hello World\", \"correlation_id\": \"k\"}") == 0);
    CHECK(strcmp(board.payloads[1], "{\"recipient\": \"ops@example.com\", \"message\": \"Hi, How are you today?\"}") == 0);
}

static void test_repeated_correlation_ids(void)
{
    static char id[IOTC_MAX_CORRELATION + 40];
    char payload[IOTC_MAX_CORRELATION + 80];
    int i;
    reset();
    /* A redelivered request (same id) is neither run nor answered again, whatever its api. */
    EXPECT("write_uart", "{\"value\": \"m:once\", \"correlation_id\": \"c1\"}",
           "{\"value\": \"m:once\", \"correlation_id\": \"c1\"}");
    board.uart_len = 0;
    IGNORED("write_uart", "{\"value\": \"m:once\", \"correlation_id\": \"c1\"}", IOTC_REPEATED);
    CHECK(board.uart_len == 0);
    IGNORED("set_gpio", "{\"number\": 6, \"value\": 1, \"correlation_id\": \"c\\u0031\"}", IOTC_REPEATED);
    CHECK(board.gpio[6] == 0);
    /* A request that did not run (invalid) is not remembered. */
    IGNORED("set_gpio", "{\"number\": \"x\", \"value\": 1, \"correlation_id\": \"c2\"}", IOTC_IGNORED_INVALID);
    EXPECT("set_gpio", "{\"number\": 6, \"value\": 1, \"correlation_id\": \"c2\"}",
           "{\"number\": 6, \"value\": 1, \"correlation_id\": \"c2\"}");
    /* Non-string ids and ids beyond IOTC_MAX_CORRELATION bytes are not remembered: they run each time. */
    EXPECT("get_status", "{\"correlation_id\": 7}", "{\"value\": \"running\", \"correlation_id\": 7}");
    EXPECT("get_status", "{\"correlation_id\": 7}", "{\"value\": \"running\", \"correlation_id\": 7}");
    memset(id, 'x', IOTC_MAX_CORRELATION + 1);
    id[IOTC_MAX_CORRELATION + 1] = '\0';
    strcpy(payload, "{\"correlation_id\": \"");
    strcat(payload, id);
    strcat(payload, "\"}");
    CHECK(request("get_status", payload) == IOTC_REPLIED && request("get_status", payload) == IOTC_REPLIED);
    id[IOTC_MAX_CORRELATION] = '\0';  /* exactly the bound: remembered */
    strcpy(payload, "{\"correlation_id\": \"");
    strcat(payload, id);
    strcat(payload, "\"}");
    CHECK(request("get_status", payload) == IOTC_REPLIED && request("get_status", payload) == IOTC_REPEATED);
    /* The last IOTC_RECENT_IDS ids are remembered; an older one runs again. */
    reset();
    for (i = 0; i <= IOTC_RECENT_IDS; i++) {
        strcpy(payload, "{\"correlation_id\": \"r");
        id[0] = (char)('a' + i);
        id[1] = '\0';
        strcat(payload, id);
        strcat(payload, "\"}");
        CHECK(request("get_status", payload) == IOTC_REPLIED);
    }
    CHECK(request("get_status", payload) == IOTC_REPEATED);                         /* the newest */
    CHECK(request("get_status", "{\"correlation_id\": \"rb\"}") == IOTC_REPEATED); /* the oldest kept */
    CHECK(request("get_status", "{\"correlation_id\": \"ra\"}") == IOTC_REPLIED);  /* forgotten */
    CHECK(dev.counts[IOTC_REPEATED] == 2);
    CHECK(strcmp(iotc_outcome_name(IOTC_REPEATED), "ignored: repeated correlation id") == 0);
}

static void test_python_serialisation(void)
{
    reset();
    /* ensure_ascii: lowercase \u escapes, surrogate pairs, the short escapes, DEL escaped, "/" plain. */
    EXPECT("write_uart", "{\"value\": \"caf\xc3\xa9 \xf0\x9f\x98\x80 \\/ \\b\\f\\n\\r\\t \\u001f \x7f \\u00E9\"}",
           "{\"value\": \"caf\\u00e9 \\ud83d\\ude00 / \\b\\f\\n\\r\\t \\u001f \\u007f \\u00e9\"}");
    EXPECT("write_uart", "{\"value\": \"\\ud83d\\ude00 \\ud800 \\udc00x\"}", "{\"value\": \"\\ud83d\\ude00 \\ud800 \\udc00x\"}");
    /* Keys: first position, last value, as a Python dict. Escaped spellings are the same key. */
    EXPECT("trigger_notification", "{\"a\": 1, \"b\": 2, \"\\u0061\": 3}", "{\"a\": 3, \"b\": 2}");
    EXPECT("get_gpio", "{\"number\": 1, \"number\": 2}", "{\"number\": 2, \"value\": 0}");
    /* Separators, nesting and literals; -0 is 0; floats as sent. */
    EXPECT("write_uart", "{\"value\":[ [ ],{ },-0,0.5,1E+2,true,false,null ]}",
           "{\"value\": [[], {}, 0, 0.5, 1E+2, true, false, null]}");
}

static void test_invalid_requests(void)
{
    reset();
    IGNORED("get_gpio", "{}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": -1}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": 1.5}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": \"x\"}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": \"1.0\"}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": \"\"}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": null}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": [1]}", IOTC_IGNORED_INVALID);
    IGNORED("get_gpio", "{\"number\": 99999999999999999999}", IOTC_IGNORED_INVALID);
    IGNORED("set_gpio", "{\"number\": 1}", IOTC_IGNORED_INVALID);
    IGNORED("set_gpio", "{\"number\": 1, \"value\": \"on\"}", IOTC_IGNORED_INVALID);
    IGNORED("set_rtc", "{}", IOTC_IGNORED_INVALID);
    IGNORED("write_uart", "{\"text\": \"x\"}", IOTC_IGNORED_INVALID);
    IGNORED("set_mac", "{\"value\": \"AA:BB:CC:DD:EE:FF\"}", IOTC_IGNORED_API);
    IGNORED("format_disk", "{}", IOTC_IGNORED_API);
    IGNORED("get_status/extra", "{}", IOTC_IGNORED_API);
    CHECK(dev.counts[IOTC_IGNORED_INVALID] == 13 && dev.counts[IOTC_IGNORED_API] == 3);
}

static void test_malformed_payloads(void)
{
    static const char *const bad[] = {
        "not json", "[1, 2]", "\"text\"", "42", "null", "{", "{\"a\"", "{\"a\":}", "{\"a\" 1}", "{,}", "{\"a\":1,}",
        "{\"a\":1}}", "{\"a\":1} x", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}",
        "{\"a\":+1}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12G4\"}",
        "{\"a\":\"\t\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}",
        "\xef\xbb\xbf{}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":{\"b\":1]}", "\x0b{}",
    };
    size_t i;
    reset();
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        check(request("get_status", bad[i]) == IOTC_IGNORED_MALFORMED && board.publishes == 0, bad[i], __LINE__);
    }
    /* A NUL inside the payload ends nothing: it is a control character in a string or a syntax error. */
    fake_board_clear(&board);
    CHECK(iotc_device_handle(&dev, ID "/get_status", 51, "{\"a\":\"\0\"}", 9) == IOTC_IGNORED_MALFORMED);
    CHECK(iotc_device_handle(&dev, ID "/get_status", 51, "{}\0", 3) == IOTC_IGNORED_MALFORMED);
}

static void test_json_error_classes(void)
{
    iotc_json_tok toks[16];
    iotc_json_doc doc;
    static const struct { const char *text; int error; } cases[] = {
        {"[[[[[[[[[1]]]]]]]]]", IOTC_JSON_E_TOO_DEEP},  {"[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]", IOTC_JSON_E_TOO_MANY},
        {"{x}", IOTC_JSON_E_SYNTAX},                    {"{\"a\": [1", IOTC_JSON_E_TRUNCATED},
        {"\"a\nb\"", IOTC_JSON_E_CONTROL},              {"\"\\q\"", IOTC_JSON_E_ESCAPE},
        {"\"\xe2\x82\"", IOTC_JSON_E_UTF8},             {"-x", IOTC_JSON_E_NUMBER},
        {"{} {}", IOTC_JSON_E_TRAILING},                {"", IOTC_JSON_E_TRUNCATED},
        {"\"\\u00", IOTC_JSON_E_TRUNCATED},            {"fals", IOTC_JSON_E_TRUNCATED},
        {"[[[[[[[[1]]]]]]]]", IOTC_JSON_OK},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(iotc_json_parse(&doc, cases[i].text, strlen(cases[i].text), toks, 16) == cases[i].error, cases[i].text,
              __LINE__);
    CHECK(iotc_json_parse(&doc, "{}", 70000, toks, 16) == IOTC_JSON_E_TOO_LONG);
}

static void test_integers(void)
{
    static const struct { const char *text; int rc; long long v; } cases[] = {
        {"0", IOTC_INT_OK, 0}, {"-0", IOTC_INT_OK, 0}, {"12", IOTC_INT_OK, 12}, {"1.0", IOTC_INT_OK, 1},
        {"1.50e1", IOTC_INT_OK, 15}, {"1e2", IOTC_INT_OK, 100}, {"1200e-2", IOTC_INT_OK, 12}, {"0.0001e4", IOTC_INT_OK, 1},
        {"-9223372036854775807", IOTC_INT_OK, -9223372036854775807LL}, {"1.5", IOTC_INT_NOT_INTEGER, 0},
        {"1e-1", IOTC_INT_NOT_INTEGER, 0}, {"9223372036854775808", IOTC_INT_RANGE, 0}, {"1e20", IOTC_INT_RANGE, 0},
        {"0e999999", IOTC_INT_OK, 0}, {"1e-400", IOTC_INT_NOT_INTEGER, 0},
    };
    iotc_json_tok toks[2];
    iotc_json_doc doc;
    size_t i;
    int64_t v = 0;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ok = iotc_json_parse(&doc, cases[i].text, strlen(cases[i].text), toks, 2) == IOTC_JSON_OK;
        int rc = ok ? iotc_json_number_int(&doc, 0, &v) : 99;
        check(rc == cases[i].rc && (rc != IOTC_INT_OK || v == cases[i].v), cases[i].text, __LINE__);
    }
    CHECK(iotc_text_int(" \t+42\x1f", 6, &v) == IOTC_INT_OK && v == 42);
    CHECK(iotc_text_int("4 2", 3, &v) == IOTC_INT_NOT_INTEGER);
    CHECK(iotc_text_int("-", 1, &v) == IOTC_INT_NOT_INTEGER);
}

static void test_topics(void)
{
    char api[8], out[24];
    reset();
    CHECK(iotc_device_subscribe(&dev) == 0 && strcmp(board.filter, ID "/#") == 0);
    CHECK(iotc_topic_api("dev", 3, "dev/get_ip", 10, api, sizeof api) == 6 && strcmp(api, "get_ip") == 0);
    CHECK(iotc_topic_api("dev", 3, "dev/", 4, api, sizeof api) == -1);
    CHECK(iotc_topic_api("dev", 3, "dev", 3, api, sizeof api) == -1);
    CHECK(iotc_topic_api("dev", 3, "devx/get_ip", 11, api, sizeof api) == -1);
    CHECK(iotc_topic_api("dev", 3, "other/get_ip", 12, api, sizeof api) == -1);
    CHECK(iotc_topic_api("dev", 3, "dev/get_gateway", 15, api, sizeof api) == -1);
    CHECK(iotc_topic_api("dev", 3, "dev/a\0b", 7, api, sizeof api) == -1);
    CHECK(iotc_topic_reply("dev", 3, "get_ip", out, 17) == -1);
    CHECK(iotc_topic_reply("dev", 3, "get_ip", out, 18) == 17 && strcmp(out, "server/dev/get_ip") == 0);
    CHECK(iotc_topic_filter("dev", 3, out, 5) == -1);
    IGNORED("", "{}", IOTC_IGNORED_TOPIC);
    fake_board_clear(&board);
    CHECK(iotc_device_handle(&dev, "server/" ID "/get_status", 58, "{}", 2) == IOTC_IGNORED_TOPIC);
    CHECK(iotc_device_handle(&dev, ID, 40, "{}", 2) == IOTC_IGNORED_TOPIC);
    CHECK(iotc_device_init(&dev, &hal, "a/b", NULL) == -1);
    CHECK(iotc_device_init(&dev, &hal, "a#", NULL) == -1);
    CHECK(iotc_device_init(&dev, &hal, "", NULL) == -1);
}

static void test_bounds_and_failures(void)
{
    static char big[IOTC_MAX_PAYLOAD + 40];
    size_t i;
    reset();
    /* A payload beyond IOTC_MAX_PAYLOAD is not read. */
    memcpy(big, "{\"value\": \"", 11);
    for (i = 11; i < sizeof big - 3; i++) big[i] = 'x';
    memcpy(big + sizeof big - 3, "\"}", 3);
    IGNORED("write_uart", big, IOTC_IGNORED_TOO_LONG);
    /* A reply that would not fit (6x escaping) is not sent. */
    for (i = 11; i + 3 < IOTC_MAX_PAYLOAD; i++) big[i] = 0x7f;
    memcpy(big + i, "\"}", 3);
    IGNORED("write_uart", big, IOTC_FAILED_REPLY);
    /* Too many tokens. */
    IGNORED("write_uart",
            "{\"value\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,"
            "37,38,39,40,41,42,43,44,45,46,47,48]}",
            IOTC_IGNORED_MALFORMED);
    /* The board refuses. */
    IGNORED("get_gpio", "{\"number\": 32}", IOTC_FAILED_HAL);
    IGNORED("set_gpio", "{\"number\": 1000, \"value\": 1}", IOTC_FAILED_HAL);
    board.rtc_fails = 1;
    IGNORED("get_rtc", "{}", IOTC_FAILED_HAL);
    IGNORED("set_rtc", "{\"value\": 5}", IOTC_FAILED_HAL);
    board.rtc_fails = 0;
    board.publish_fails = 1;
    IGNORED("get_status", "{}", IOTC_FAILED_REPLY);
    board.publish_fails = 0;
    CHECK(dev.counts[IOTC_FAILED_HAL] == 4 && dev.counts[IOTC_FAILED_REPLY] == 2);
}

int test_core_run(void)
{
    test_every_api();
    test_keyword_and_self_notification();
    test_correlation_ids();
    test_repeated_correlation_ids();
    test_python_serialisation();
    test_invalid_requests();
    test_malformed_payloads();
    test_json_error_classes();
    test_integers();
    test_topics();
    test_bounds_and_failures();
    out_int(checks);
    test_out(" checks, ");
    out_int(failures);
    test_out(" failed\n");
    return failures ? 1 : 0;
}
