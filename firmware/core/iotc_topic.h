/* Topic routing: "<id>/<api>" in, "server/<id>/<api>" out (protocol reference §2.1). */
#ifndef IOTC_TOPIC_H
#define IOTC_TOPIC_H

#include <stddef.h>

/* The api of a request topic addressed to `id`, copied NUL-terminated into api[cap]: its length,
 * or -1 when the topic is not <id>/<api>, the api is empty, too long or holds a NUL. */
long iotc_topic_api(const char *id, size_t id_len, const char *topic, size_t topic_len, char *api, size_t cap);
/* "server/<id>/<api>" into out[cap], NUL-terminated: its length, or -1 if it does not fit. */
long iotc_topic_reply(const char *id, size_t id_len, const char *api, char *out, size_t cap);
/* "<id>/#": the device's subscription. */
long iotc_topic_filter(const char *id, size_t id_len, char *out, size_t cap);

#endif
