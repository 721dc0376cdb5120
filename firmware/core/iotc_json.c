#include "iotc_json.h"
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
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
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
            size_t n = utf8_len((const unsigned char *)buf + i, len - i, &cp);
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

static uint32_t next_cp(const char *s, size_t *i, size_t end)
{
    unsigned char c = (unsigned char)s[*i];
    uint32_t cp;
    if (c != '\\') {
        size_t n = utf8_len((const unsigned char *)s + *i, end - *i, &cp);
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
        uint32_t a = next_cp(doc->buf, &i, end), b;
        size_t k;
        if (j >= n) return 0;
        k = utf8_len((const unsigned char *)s + j, n - j, &b);
        if (k == 0 || a != b) return 0;
        j += k;
    }
    return j == n;
}

static int tok_eq(const iotc_json_doc *doc, int a, int b)
{
    const iotc_json_tok *ta = &doc->toks[a], *tb = &doc->toks[b];
    size_t i = ta->start, iend = (size_t)ta->start + ta->len, j = tb->start, jend = (size_t)tb->start + tb->len;
    while (i < iend && j < jend)
        if (next_cp(doc->buf, &i, iend) != next_cp(doc->buf, &j, jend)) return 0;
    return i == iend && j == jend;
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
        size_t k = put_utf8(tmp, next_cp(doc->buf, &i, end));
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

/* ------------------------------------------------------------------------------------------------
 * Writer. */

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
        size_t k = utf8_len((const unsigned char *)utf8 + i, n - i, &cp);
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
    while (i < end && !w->overflow) put_cp(w, next_cp(doc->buf, &i, end));
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
