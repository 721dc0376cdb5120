/* The strict, bounded JSON reader of iotc_json.h, the string/number accessors on its tokens, and the
 * UTF-8 and escape decoding that the writer (iotc_json_write.c) shares through iotc_json_utf8.h. */
#include "iotc_json.h"
#include "iotc_json_utf8.h"
#include "iotc_config.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Reader: one pass, an explicit stack of open containers (no recursion), every byte checked. */

enum state { ST_VALUE, ST_VALUE_OR_CLOSE, ST_KEY, ST_KEY_OR_CLOSE, ST_COLON, ST_COMMA_OR_CLOSE, ST_DONE };

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int iotc_is_py_space(unsigned char c)
{
    /* Python's str.isspace() for ASCII: \t \n \v \f \r, the separators \x1c-\x1f, space. */
    return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
}

/* Length of the UTF-8 sequence at s[0..n) that encodes one scalar value, or 0 if invalid. */
size_t iotc_utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t need, i;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xc2 && c <= 0xdf) { need = 2; v = c & 0x1f; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { need = 3; v = c & 0x0f; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { need = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (n < need) return 0;
    for (i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return need;
}

static int scan_string(const char *buf, size_t len, size_t *pos)
{
    size_t i = *pos + 1; /* after the opening quote */
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '"') { *pos = i + 1; return IOTC_JSON_OK; }
        if (c < 0x20) return IOTC_JSON_E_CONTROL;
        if (c == '\\') {
            if (i + 1 >= len) return IOTC_JSON_E_TRUNCATED;
            c = (unsigned char)buf[i + 1];
            if (c == 'u') {
                size_t k;
                if (i + 6 > len) return IOTC_JSON_E_TRUNCATED;
                for (k = 2; k < 6; k++)
                    if (hex_val(buf[i + k]) < 0) return IOTC_JSON_E_ESCAPE;
                i += 6;
            } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
                i += 2;
            } else {
                return IOTC_JSON_E_ESCAPE;
            }
        } else if (c < 0x80) {
            i++;
        } else {
            uint32_t cp;
            size_t n = iotc_utf8_len((const unsigned char *)buf + i, len - i, &cp);
            if (n == 0) return IOTC_JSON_E_UTF8;
            i += n;
        }
    }
    return IOTC_JSON_E_TRUNCATED;
}

static int scan_number(const char *buf, size_t len, size_t *pos)
{
    size_t i = *pos;
    if (buf[i] == '-') i++;
    if (i >= len) return IOTC_JSON_E_TRUNCATED;
    if (buf[i] == '0') i++;
    else if (buf[i] >= '1' && buf[i] <= '9') { while (i < len && is_digit(buf[i])) i++; }
    else return IOTC_JSON_E_NUMBER;
    if (i < len && buf[i] == '.') {
        i++;
        if (i >= len) return IOTC_JSON_E_TRUNCATED;
        if (!is_digit(buf[i])) return IOTC_JSON_E_NUMBER;
        while (i < len && is_digit(buf[i])) i++;
    }
    if (i < len && (buf[i] == 'e' || buf[i] == 'E')) {
        i++;
        if (i < len && (buf[i] == '+' || buf[i] == '-')) i++;
        if (i >= len) return IOTC_JSON_E_TRUNCATED;
        if (!is_digit(buf[i])) return IOTC_JSON_E_NUMBER;
        while (i < len && is_digit(buf[i])) i++;
    }
    *pos = i;
    return IOTC_JSON_OK;
}

static int scan_literal(const char *buf, size_t len, size_t *pos, const char *word, size_t wlen)
{
    size_t avail = len - *pos;
    if (avail < wlen) return memcmp(buf + *pos, word, avail) == 0 ? IOTC_JSON_E_TRUNCATED : IOTC_JSON_E_SYNTAX;
    if (memcmp(buf + *pos, word, wlen) != 0) return IOTC_JSON_E_SYNTAX;
    *pos += wlen;
    return IOTC_JSON_OK;
}

int iotc_json_parse(iotc_json_doc *doc, const char *buf, size_t len, iotc_json_tok *toks, uint16_t cap)
{
    uint16_t stack[IOTC_JSON_MAX_DEPTH];
    int depth = 0;
    enum state st = ST_VALUE;
    size_t pos = 0;
    uint16_t n = 0;

    doc->buf = buf;
    doc->toks = toks;
    doc->count = 0;
    if (len > 65535) return IOTC_JSON_E_TOO_LONG;

    for (;;) {
        char c;
        int rc;
        size_t begin;
        uint8_t type;

        while (pos < len && is_ws(buf[pos])) pos++;
        if (st == ST_DONE) {
            if (pos != len) return IOTC_JSON_E_TRAILING;
            doc->count = n;
            return IOTC_JSON_OK;
        }
        if (pos >= len) return IOTC_JSON_E_TRUNCATED;
        c = buf[pos];

        switch (st) {
        case ST_COLON:
            if (c != ':') return IOTC_JSON_E_SYNTAX;
            pos++;
            st = ST_VALUE;
            continue;
        case ST_COMMA_OR_CLOSE: {
            iotc_json_tok *top = &toks[stack[depth - 1]];
            if (c == ',') {
                pos++;
                st = top->type == IOTC_JSON_OBJECT ? ST_KEY : ST_VALUE;
                continue;
            }
            if ((c == '}' && top->type == IOTC_JSON_OBJECT) || (c == ']' && top->type == IOTC_JSON_ARRAY)) goto close;
            return IOTC_JSON_E_SYNTAX;
        }
        case ST_KEY_OR_CLOSE:
            if (c == '}') goto close;
            /* fall through */
        case ST_KEY:
            if (c != '"') return IOTC_JSON_E_SYNTAX;
            if (n >= cap) return IOTC_JSON_E_TOO_MANY;
            begin = pos;
            rc = scan_string(buf, len, &pos);
            if (rc) return rc;
            toks[n].start = (uint16_t)(begin + 1);
            toks[n].len = (uint16_t)(pos - begin - 2);
            toks[n].next = (uint16_t)(n + 1);
            toks[n].size = 0;
            toks[n].type = IOTC_JSON_STRING;
            n++;
            st = ST_COLON;
            continue;
        case ST_VALUE_OR_CLOSE:
            if (c == ']') goto close;
            /* fall through */
        case ST_VALUE:
            break;
        case ST_DONE:
            return IOTC_JSON_E_TRAILING; /* unreachable: handled above */
        }

        /* A value starts here. */
        if (n >= cap) return IOTC_JSON_E_TOO_MANY;
        if (depth > 0) toks[stack[depth - 1]].size++;
        if (c == '{' || c == '[') {
            if (depth >= IOTC_JSON_MAX_DEPTH) return IOTC_JSON_E_TOO_DEEP;
            toks[n].start = (uint16_t)pos;
            toks[n].len = 0;
            toks[n].next = 0;
            toks[n].size = 0;
            toks[n].type = c == '{' ? IOTC_JSON_OBJECT : IOTC_JSON_ARRAY;
            stack[depth++] = n++;
            pos++;
            st = c == '{' ? ST_KEY_OR_CLOSE : ST_VALUE_OR_CLOSE;
            continue;
        }
        begin = pos;
        if (c == '"') { rc = scan_string(buf, len, &pos); type = IOTC_JSON_STRING; }
        else if (c == '-' || is_digit(c)) { rc = scan_number(buf, len, &pos); type = IOTC_JSON_NUMBER; }
        else if (c == 't') { rc = scan_literal(buf, len, &pos, "true", 4); type = IOTC_JSON_TRUE; }
        else if (c == 'f') { rc = scan_literal(buf, len, &pos, "false", 5); type = IOTC_JSON_FALSE; }
        else if (c == 'n') { rc = scan_literal(buf, len, &pos, "null", 4); type = IOTC_JSON_NULL; }
        else return IOTC_JSON_E_SYNTAX;
        if (rc) return rc;
        if (type == IOTC_JSON_STRING) {
            toks[n].start = (uint16_t)(begin + 1);
            toks[n].len = (uint16_t)(pos - begin - 2);
        } else {
            toks[n].start = (uint16_t)begin;
            toks[n].len = (uint16_t)(pos - begin);
        }
        toks[n].next = (uint16_t)(n + 1);
        toks[n].size = 0;
        toks[n].type = type;
        n++;
        st = depth == 0 ? ST_DONE : ST_COMMA_OR_CLOSE;
        continue;

    close: {
            iotc_json_tok *top = &toks[stack[--depth]];
            pos++;
            top->len = (uint16_t)(pos - top->start);
            top->next = n;
            st = depth == 0 ? ST_DONE : ST_COMMA_OR_CLOSE;
        }
    }
}

/* ------------------------------------------------------------------------------------------------
 * Strings: code points as Python's json module decodes them (an escaped surrogate pair is one
 * code point; a lone escaped surrogate stays itself). */

uint32_t iotc_json_next_cp(const char *s, size_t *i, size_t end)
{
    unsigned char c = (unsigned char)s[*i];
    uint32_t cp;
    if (c != '\\') {
        size_t n = iotc_utf8_len((const unsigned char *)s + *i, end - *i, &cp);
        *i += n ? n : 1; /* validated by the reader: n is never 0 here */
        return n ? cp : 0xfffd;
    }
    c = (unsigned char)s[*i + 1];
    *i += 2;
    switch (c) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return c; /* " \ / */
    }
    cp = (uint32_t)(hex_val(s[*i]) << 12 | hex_val(s[*i + 1]) << 8 | hex_val(s[*i + 2]) << 4 | hex_val(s[*i + 3]));
    *i += 4;
    if (cp >= 0xd800 && cp <= 0xdbff && *i + 6 <= end && s[*i] == '\\' && s[*i + 1] == 'u') {
        uint32_t lo = (uint32_t)(hex_val(s[*i + 2]) << 12 | hex_val(s[*i + 3]) << 8 | hex_val(s[*i + 4]) << 4 |
                                 hex_val(s[*i + 5]));
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            *i += 6;
            return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
    }
    return cp;
}

int iotc_json_str_eq(const iotc_json_doc *doc, int tok, const char *s, size_t n)
{
    const iotc_json_tok *t = &doc->toks[tok];
    size_t i = t->start, end = (size_t)t->start + t->len, j = 0;
    if (t->type != IOTC_JSON_STRING) return 0;
    while (i < end) {
        uint32_t a = iotc_json_next_cp(doc->buf, &i, end), b;
        size_t k;
        if (j >= n) return 0;
        k = iotc_utf8_len((const unsigned char *)s + j, n - j, &b);
        if (k == 0 || a != b) return 0;
        j += k;
    }
    return j == n;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

long iotc_json_str_decode(const iotc_json_doc *doc, int tok, char *out, size_t cap)
{
    const iotc_json_tok *t = &doc->toks[tok];
    size_t i = t->start, end = (size_t)t->start + t->len, o = 0;
    char tmp[4];
    if (t->type != IOTC_JSON_STRING) return -1;
    while (i < end) {
        size_t k = put_utf8(tmp, iotc_json_next_cp(doc->buf, &i, end));
        if (o + k > cap) return -1;
        memcpy(out + o, tmp, k);
        o += k;
    }
    return (long)o;
}

int iotc_json_get(const iotc_json_doc *doc, int object, const char *key)
{
    const iotc_json_tok *o = &doc->toks[object];
    int child = object + 1, found = -1;
    uint16_t m;
    if (o->type != IOTC_JSON_OBJECT) return -1;
    for (m = 0; m < o->size; m++) {
        if (iotc_json_str_eq(doc, child, key, strlen(key))) found = child + 1;
        child = doc->toks[child + 1].next;
    }
    return found;
}

/* ------------------------------------------------------------------------------------------------
 * Integers. A number is an integer when digits * 10^exponent has no fractional part, computed
 * exactly (not through a double): 1.0, 1e2 and -0 are integers, 1.5 and 1e-400 are not. */

#define INT64_LIMIT 9223372036854775807ULL

static int accumulate(uint64_t *v, int digit)
{
    if (*v > (INT64_LIMIT - (uint64_t)digit) / 10) return IOTC_INT_RANGE;
    *v = *v * 10 + (uint64_t)digit;
    return IOTC_INT_OK;
}

static int signed_result(uint64_t mag, int negative, int64_t *out)
{
    if (mag > INT64_LIMIT) return IOTC_INT_RANGE;
    *out = negative ? -(int64_t)mag : (int64_t)mag;
    return IOTC_INT_OK;
}

int iotc_json_number_int(const iotc_json_doc *doc, int tok, int64_t *out)
{
    const iotc_json_tok *t = &doc->toks[tok];
    const char *s = doc->buf + t->start;
    size_t n = t->len, i = 0, int_begin, int_end, frac_begin = 0, frac_end = 0, last_nonzero;
    long exp = 0, zeros;
    int negative = 0, exp_negative = 0, have_nonzero = 0;
    uint64_t mag = 0;

    if (t->type != IOTC_JSON_NUMBER) return IOTC_INT_NOT_INTEGER;
    if (s[i] == '-') { negative = 1; i++; }
    int_begin = i;
    while (i < n && is_digit(s[i])) i++;
    int_end = i;
    if (i < n && s[i] == '.') {
        frac_begin = ++i;
        while (i < n && is_digit(s[i])) i++;
        frac_end = i;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (s[i] == '+' || s[i] == '-') exp_negative = s[i++] == '-';
        while (i < n) {
            if (exp < 100000) exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (exp_negative) exp = -exp;
    }
    /* The significant digits are int+frac; find the last non-zero one. */
    last_nonzero = 0;
    for (i = int_begin; i < int_end; i++)
        if (s[i] != '0') { have_nonzero = 1; last_nonzero = i; }
    for (i = frac_begin; i < frac_end; i++)
        if (s[i] != '0') { have_nonzero = 1; last_nonzero = i; }
    if (!have_nonzero) { *out = 0; return IOTC_INT_OK; }
    /* Decimal exponent of the last non-zero digit. */
    if (last_nonzero >= frac_begin && frac_end > frac_begin && last_nonzero < frac_end)
        zeros = exp - (long)(last_nonzero - frac_begin + 1);
    else
        zeros = exp + (long)(int_end - last_nonzero - 1);
    if (zeros < 0) return IOTC_INT_NOT_INTEGER;
    if (zeros > 19) return IOTC_INT_RANGE;
    for (i = int_begin; i < int_end && i <= last_nonzero; i++)
        if (accumulate(&mag, s[i] - '0')) return IOTC_INT_RANGE;
    if (last_nonzero >= frac_begin && frac_end > frac_begin && last_nonzero < frac_end) {
        for (i = frac_begin; i <= last_nonzero; i++)
            if (accumulate(&mag, s[i] - '0')) return IOTC_INT_RANGE;
    }
    while (zeros-- > 0)
        if (accumulate(&mag, 0)) return IOTC_INT_RANGE;
    return signed_result(mag, negative, out);
}

int iotc_text_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int negative = 0;
    uint64_t mag = 0;
    while (n > 0 && iotc_is_py_space((unsigned char)s[n - 1])) n--;
    while (i < n && iotc_is_py_space((unsigned char)s[i])) i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    if (i >= n) return IOTC_INT_NOT_INTEGER;
    for (; i < n; i++) {
        if (!is_digit(s[i])) return IOTC_INT_NOT_INTEGER;
        if (accumulate(&mag, s[i] - '0')) return IOTC_INT_RANGE;
    }
    return signed_result(mag, negative, out);
}
