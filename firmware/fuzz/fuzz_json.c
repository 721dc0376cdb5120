/* libFuzzer target: the JSON reader on any bytes. What it accepts must serialise, re-parse, and
 * serialise to the same bytes again (the writer is a fixed point), and every accessor must stay
 * inside the buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iotc_config.h"
#include "iotc_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static iotc_json_tok toks[IOTC_JSON_MAX_TOKENS], toks2[IOTC_JSON_MAX_TOKENS];
    static char out[1 << 19], out2[1 << 19], text[1 << 17];
    iotc_json_doc doc, doc2;
    iotc_json_writer w;
    long n, n2;
    uint16_t i;

    if (iotc_json_parse(&doc, (const char *)data, size, toks, IOTC_JSON_MAX_TOKENS) != IOTC_JSON_OK) return 0;
    for (i = 0; i < doc.count; i++) {
        int64_t v;
        if (toks[i].type == IOTC_JSON_STRING) (void)iotc_json_str_decode(&doc, i, text, sizeof text);
        if (toks[i].type == IOTC_JSON_NUMBER) (void)iotc_json_number_int(&doc, i, &v);
    }
    (void)iotc_json_get(&doc, 0, "value");
    iotc_jw_init(&w, out, sizeof out);
    iotc_jw_value(&w, &doc, 0);
    n = iotc_jw_finish(&w);
    if (n < 0) abort(); /* 6x the input always fits */
    if (n > 65535) return 0; /* beyond what the reader takes */
    /* Duplicate keys collapse and -0 becomes 0, so the output may have fewer tokens, never more. */
    if (iotc_json_parse(&doc2, out, (size_t)n, toks2, IOTC_JSON_MAX_TOKENS) != IOTC_JSON_OK) abort();
    iotc_jw_init(&w, out2, sizeof out2);
    iotc_jw_value(&w, &doc2, 0);
    n2 = iotc_jw_finish(&w);
    if (n2 != n || memcmp(out, out2, (size_t)n) != 0) abort();
    return 0;
}
