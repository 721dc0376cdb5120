/* libFuzzer target: a whole request through the topic router and every API. Input: topic, a NUL,
 * payload. Whatever the device publishes must be a JSON object on server/<id>/<api>. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_hal.h"
#include "iotc_device.h"

#define ID "0123456789abcdef0123456789abcdef01234567"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static iotc_device dev;
    static fake_board board;
    static iotc_hal hal;
    static int ready;
    static iotc_json_tok toks[IOTC_JSON_MAX_TOKENS * 4];
    const uint8_t *nul = memchr(data, 0, size);
    size_t topic_len = nul ? (size_t)(nul - data) : size;
    const char *payload = nul ? (const char *)nul + 1 : "";
    size_t len = nul ? size - topic_len - 1 : 0;
    int outcome, i;

    if (!ready) {
        fake_hal_init(&hal, &board);
        if (iotc_device_init(&dev, &hal, ID, "ops@example.com")) abort();
        ready = 1;
    }
    fake_board_clear(&board);
    outcome = iotc_device_handle(&dev, (const char *)data, topic_len, payload, len);
    if (outcome < 0 || outcome >= IOTC_OUTCOMES) abort();
    if ((outcome == IOTC_REPLIED) != (board.publishes > 0)) abort();
    for (i = 0; i < board.publishes; i++) {
        iotc_json_doc doc;
        if (strncmp(board.topics[i], "server/" ID "/", sizeof("server/" ID "/") - 1) != 0) abort();
        if (iotc_json_parse(&doc, board.payloads[i], board.lens[i], toks, IOTC_JSON_MAX_TOKENS * 4) != IOTC_JSON_OK ||
            toks[0].type != IOTC_JSON_OBJECT)
            abort();
    }
    return 0;
}
