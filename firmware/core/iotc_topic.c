#include "iotc_topic.h"

#include <string.h>

long iotc_topic_api(const char *id, size_t id_len, const char *topic, size_t topic_len, char *api, size_t cap)
{
    size_t n;
    if (id_len == 0 || topic_len <= id_len + 1) return -1;
    if (memcmp(topic, id, id_len) != 0 || topic[id_len] != '/') return -1;
    n = topic_len - id_len - 1;
    if (n >= cap || memchr(topic + id_len + 1, '\0', n) != NULL) return -1;
    memcpy(api, topic + id_len + 1, n);
    api[n] = '\0';
    return (long)n;
}

static long join(char *out, size_t cap, const char *a, size_t an, const char *b, size_t bn, const char *c, size_t cn)
{
    if (an + bn + cn >= cap) return -1;
    memcpy(out, a, an);
    memcpy(out + an, b, bn);
    memcpy(out + an + bn, c, cn);
    out[an + bn + cn] = '\0';
    return (long)(an + bn + cn);
}

long iotc_topic_reply(const char *id, size_t id_len, const char *api, char *out, size_t cap)
{
    long n = join(out, cap, "server/", 7, id, id_len, "/", 1);
    size_t an = strlen(api);
    if (n < 0 || (size_t)n + an >= cap) return -1;
    memcpy(out + n, api, an + 1);
    return n + (long)an;
}

long iotc_topic_filter(const char *id, size_t id_len, char *out, size_t cap)
{
    return join(out, cap, "", 0, id, id_len, "/#", 2);
}
