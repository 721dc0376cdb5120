/* The writer of iotc_json.h: serialises like Python's json.dumps defaults, including re-serialising a
 * parsed document (iotc_jw_value). String tokens are decoded with the reader's iotc_json_next_cp. */
#include "iotc_json.h"
#include "iotc_json_utf8.h"
#include "iotc_config.h"

#include <string.h>

/* Two string tokens decode to the same text: a key repeated in an object, however it is escaped. */
static int tok_eq(const iotc_json_doc *doc, int a, int b)
{
    const iotc_json_tok *ta = &doc->toks[a], *tb = &doc->toks[b];
    size_t i = ta->start, iend = (size_t)ta->start + ta->len, j = tb->start, jend = (size_t)tb->start + tb->len;
    while (i < iend && j < jend)
        if (iotc_json_next_cp(doc->buf, &i, iend) != iotc_json_next_cp(doc->buf, &j, jend)) return 0;
    return i == iend && j == jend;
}

void iotc_jw_init(iotc_json_writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = cap == 0;
}

void iotc_jw_raw(iotc_json_writer *w, const char *s, size_t n)
{
    /* One byte stays free for the terminating NUL. */
    if (w->overflow || n >= w->cap - w->len) { w->overflow = 1; return; }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_cp(iotc_json_writer *w, uint32_t cp)
{
    static const char hex[] = "0123456789abcdef";
    char e[12];
    if (cp == '"') { iotc_jw_raw(w, "\\\"", 2); return; }
    if (cp == '\\') { iotc_jw_raw(w, "\\\\", 2); return; }
    if (cp >= 0x20 && cp <= 0x7e) { e[0] = (char)cp; iotc_jw_raw(w, e, 1); return; }
    switch (cp) {
    case '\n': iotc_jw_raw(w, "\\n", 2); return;
    case '\r': iotc_jw_raw(w, "\\r", 2); return;
    case '\t': iotc_jw_raw(w, "\\t", 2); return;
    case '\b': iotc_jw_raw(w, "\\b", 2); return;
    case '\f': iotc_jw_raw(w, "\\f", 2); return;
    default: break;
    }
    if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        put_cp(w, 0xd800 | (v >> 10));
        put_cp(w, 0xdc00 | (v & 0x3ff));
        return;
    }
    e[0] = '\\'; e[1] = 'u';
    e[2] = hex[(cp >> 12) & 0xf]; e[3] = hex[(cp >> 8) & 0xf]; e[4] = hex[(cp >> 4) & 0xf]; e[5] = hex[cp & 0xf];
    iotc_jw_raw(w, e, 6);
}

void iotc_jw_str(iotc_json_writer *w, const char *utf8, size_t n)
{
    size_t i = 0;
    iotc_jw_raw(w, "\"", 1);
    while (i < n) {
        uint32_t cp;
        size_t k = iotc_utf8_len((const unsigned char *)utf8 + i, n - i, &cp);
        if (k == 0) { cp = 0xfffd; k = 1; }
        put_cp(w, cp);
        i += k;
    }
    iotc_jw_raw(w, "\"", 1);
}

void iotc_jw_int(iotc_json_writer *w, int64_t v)
{
    char digits[21];
    size_t i = sizeof digits;
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[--i] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    if (v < 0) digits[--i] = '-';
    iotc_jw_raw(w, digits + i, sizeof digits - i);
}

static void put_string_tok(iotc_json_writer *w, const iotc_json_doc *doc, int tok)
{
    const iotc_json_tok *t = &doc->toks[tok];
    size_t i = t->start, end = (size_t)t->start + t->len;
    iotc_jw_raw(w, "\"", 1);
    while (i < end && !w->overflow) put_cp(w, iotc_json_next_cp(doc->buf, &i, end));
    iotc_jw_raw(w, "\"", 1);
}

static void put_number_tok(iotc_json_writer *w, const iotc_json_doc *doc, int tok)
{
    /* Integers as Python prints them (so "-0" becomes "0"); other numbers as sent: the platform
     * serialises floats with Python's repr, which is what json.dumps would print back. */
    const iotc_json_tok *t = &doc->toks[tok];
    const char *s = doc->buf + t->start;
    size_t i;
    for (i = 0; i < t->len; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') { iotc_jw_raw(w, s, t->len); return; }
    if (t->len == 2 && s[0] == '-' && s[1] == '0') iotc_jw_raw(w, "0", 1);
    else iotc_jw_raw(w, s, t->len);
}

/* The value of the last member named like member `key` of `object` (first position, last value). */
static int last_value_for(const iotc_json_doc *doc, int object, int key, int *first)
{
    const iotc_json_tok *o = &doc->toks[object];
    int child = object + 1, value = -1;
    uint16_t m;
    *first = -1;
    for (m = 0; m < o->size; m++) {
        if (child == key || tok_eq(doc, child, key)) {
            if (*first < 0) *first = child;
            value = child + 1;
        }
        child = doc->toks[child + 1].next;
    }
    return value;
}

void iotc_jw_value(iotc_json_writer *w, const iotc_json_doc *doc, int tok)
{
    /* Iterative: a stack of (container, next child, members left) bounded by the reader's depth. */
    struct frame { int container, child; uint16_t left; } stack[IOTC_JSON_MAX_DEPTH + 1];
    int depth = 0, cur = tok;
    for (;;) {
        const iotc_json_tok *t = &doc->toks[cur];
        if (w->overflow) return;
        switch (t->type) {
        case IOTC_JSON_OBJECT:
        case IOTC_JSON_ARRAY:
            iotc_jw_raw(w, t->type == IOTC_JSON_OBJECT ? "{" : "[", 1);
            if (depth > IOTC_JSON_MAX_DEPTH) { w->overflow = 1; return; }
            stack[depth].container = cur;
            stack[depth].child = cur + 1;
            stack[depth].left = t->size;
            depth++;
            break;
        case IOTC_JSON_STRING: put_string_tok(w, doc, cur); break;
        case IOTC_JSON_NUMBER: put_number_tok(w, doc, cur); break;
        case IOTC_JSON_TRUE: iotc_jw_raw(w, "true", 4); break;
        case IOTC_JSON_FALSE: iotc_jw_raw(w, "false", 5); break;
        default: iotc_jw_raw(w, "null", 4); break;
        }
        /* Find the next value to write, closing finished containers. */
        for (;;) {
            struct frame *f;
            const iotc_json_tok *c;
            if (depth == 0) return;
            f = &stack[depth - 1];
            c = &doc->toks[f->container];
            if (c->type == IOTC_JSON_ARRAY) {
                if (f->left == 0) { iotc_jw_raw(w, "]", 1); depth--; continue; }
                if (f->left != c->size) iotc_jw_raw(w, ", ", 2);
                cur = f->child;
                f->child = doc->toks[cur].next;
                f->left--;
                break;
            } else {
                int key, first, value = -1;
                while (f->left > 0) {
                    key = f->child;
                    f->child = doc->toks[key + 1].next;
                    f->left--;
                    value = last_value_for(doc, f->container, key, &first);
                    if (first == key) break; /* a repeated key was written at its first position */
                    value = -1;
                }
                if (value < 0) { iotc_jw_raw(w, "}", 1); depth--; continue; }
                if (key != f->container + 1) iotc_jw_raw(w, ", ", 2);
                put_string_tok(w, doc, key);
                iotc_jw_raw(w, ": ", 2);
                cur = value;
                break;
            }
        }
    }
}

long iotc_jw_finish(iotc_json_writer *w)
{
    if (w->overflow) return -1;
    w->buf[w->len] = '\0';
    return (long)w->len;
}
