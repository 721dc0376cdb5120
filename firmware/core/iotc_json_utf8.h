/* Private to iotc_json_read.c and iotc_json_write.c, not part of the core's API: the UTF-8 and
 * escape decoding both need, defined once in iotc_json_read.c. */
#ifndef IOTC_JSON_UTF8_H
#define IOTC_JSON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length of the UTF-8 sequence at s[0..n) that encodes one scalar value (stored in *cp), or 0 if
 * invalid: overlong forms, surrogates and values beyond U+10FFFF are invalid. */
size_t iotc_utf8_len(const unsigned char *s, size_t n, uint32_t *cp);

/* The code point at s[*i] inside a string token that ends at end, advancing *i past it: UTF-8 or an
 * escape, with an escaped surrogate pair decoded to one code point as Python's json module does (a
 * lone escaped surrogate stays itself). Only for tokens the reader validated. */
uint32_t iotc_json_next_cp(const char *s, size_t *i, size_t end);

#endif
