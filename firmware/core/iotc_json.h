/* A strict, bounded JSON reader (RFC 8259, UTF-8 checked) into a caller's token array, and a writer
 * that serialises exactly like Python's json.dumps defaults: ", " and ": " separators, ASCII only
 * (\uXXXX, lowercase hex), keys in their first position with their last value. No allocation.
 * The reader is in iotc_json_read.c, the writer in iotc_json_write.c. */
#ifndef IOTC_JSON_H
#define IOTC_JSON_H

#include <stddef.h>
#include <stdint.h>

enum iotc_json_type { IOTC_JSON_OBJECT = 1, IOTC_JSON_ARRAY, IOTC_JSON_STRING, IOTC_JSON_NUMBER,
                      IOTC_JSON_TRUE, IOTC_JSON_FALSE, IOTC_JSON_NULL };

/* The malformed-input classes, each its own code (tests and logs tell them apart). */
enum iotc_json_error {
    IOTC_JSON_OK = 0,
    IOTC_JSON_E_TOO_LONG = -1,     /* input longer than 65535 bytes */
    IOTC_JSON_E_TOO_DEEP = -2,     /* nesting beyond IOTC_JSON_MAX_DEPTH */
    IOTC_JSON_E_TOO_MANY = -3,     /* more tokens than the caller's array holds */
    IOTC_JSON_E_SYNTAX = -4,       /* unexpected character */
    IOTC_JSON_E_TRUNCATED = -5,    /* input ends inside a value */
    IOTC_JSON_E_CONTROL = -6,      /* raw control character inside a string */
    IOTC_JSON_E_ESCAPE = -7,       /* bad backslash escape */
    IOTC_JSON_E_UTF8 = -8,         /* invalid, overlong or surrogate UTF-8 */
    IOTC_JSON_E_NUMBER = -9,       /* number not in JSON grammar */
    IOTC_JSON_E_TRAILING = -10     /* data after the top-level value */
};

typedef struct {
    uint16_t start;   /* offset of the first byte (strings: after the opening quote) */
    uint16_t len;     /* bytes (strings: without quotes; containers: up to and including the close) */
    uint16_t next;    /* index of the token after this value's subtree */
    uint16_t size;    /* objects: members; arrays: elements */
    uint8_t type;
} iotc_json_tok;

typedef struct {
    const char *buf;
    iotc_json_tok *toks;
    uint16_t count;
} iotc_json_doc;

int iotc_json_parse(iotc_json_doc *doc, const char *buf, size_t len, iotc_json_tok *toks, uint16_t cap);

/* The value of the last member named key (Python dict semantics), or -1. */
int iotc_json_get(const iotc_json_doc *doc, int object, const char *key);
/* A string token equals the UTF-8 text s[0..n) after unescaping. */
int iotc_json_str_eq(const iotc_json_doc *doc, int tok, const char *s, size_t n);
/* Unescape a string token into out as UTF-8 (a lone surrogate becomes U+FFFD); length or -1 if it does not fit. */
long iotc_json_str_decode(const iotc_json_doc *doc, int tok, char *out, size_t cap);

enum iotc_int_result { IOTC_INT_OK = 0, IOTC_INT_NOT_INTEGER = -1, IOTC_INT_RANGE = -2 };
/* A number token that is mathematically an integer (1, 1.0, 1e2, -0) and fits an int64. */
int iotc_json_number_int(const iotc_json_doc *doc, int tok, int64_t *out);
/* Text that is an integer after trimming whitespace: [+-]?[0-9]+ (Python's int(str.strip())). */
int iotc_text_int(const char *s, size_t n, int64_t *out);

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
} iotc_json_writer;

void iotc_jw_init(iotc_json_writer *w, char *buf, size_t cap);
void iotc_jw_raw(iotc_json_writer *w, const char *s, size_t n);
void iotc_jw_str(iotc_json_writer *w, const char *utf8, size_t n);   /* valid UTF-8 in */
void iotc_jw_int(iotc_json_writer *w, int64_t v);
void iotc_jw_value(iotc_json_writer *w, const iotc_json_doc *doc, int tok);
/* NUL-terminates; returns the length, or -1 when something did not fit. */
long iotc_jw_finish(iotc_json_writer *w);

/* Portable replacements for what the core would take from libc beyond string.h. */
int iotc_is_py_space(unsigned char c);

#endif
