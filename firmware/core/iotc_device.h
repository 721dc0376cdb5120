/* The device: one request (topic, payload) in, the replies published through the HAL. It behaves
 * like simulators/device.py, the platform's reference device, byte for byte (see README.md for
 * the documented differences: bounds and numbers). All state is in this struct: no heap. */
#ifndef IOTC_DEVICE_H
#define IOTC_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "iotc_config.h"
#include "iotc_hal.h"
#include "iotc_json.h"

#define IOTC_KEYWORD "Hello World"
#define IOTC_KEYWORD_MESSAGE "Hi, How are you today?"
#define IOTC_DEFAULT_RECIPIENT "user@example.com"

/* What became of one request (also the counters' index). */
enum iotc_outcome {
    IOTC_REPLIED = 0,        /* a reply (and maybe a keyword notification) was published */
    IOTC_SILENT,             /* handled, no reply by design (a notification addressed to this device) */
    IOTC_IGNORED_TOPIC,      /* not <id>/<api> */
    IOTC_IGNORED_API,        /* unknown api */
    IOTC_IGNORED_TOO_LONG,   /* payload beyond IOTC_MAX_PAYLOAD */
    IOTC_IGNORED_MALFORMED,  /* not JSON, or not an object */
    IOTC_IGNORED_INVALID,    /* a required field missing or of the wrong kind */
    IOTC_FAILED_HAL,         /* the board refused (GPIO out of range, no RTC ...) */
    IOTC_FAILED_REPLY,       /* the reply did not fit IOTC_MAX_REPLY, or publish failed */
    IOTC_REPEATED,           /* its correlation id is one of the last run: not run again, not answered */
    IOTC_OUTCOMES
};

typedef struct {
    const iotc_hal *hal;
    char id[IOTC_MAX_DEVICE_ID + 1];
    size_t id_len;
    char recipient[IOTC_MAX_RECIPIENT + 1];
    /* Working buffers of the request being handled. */
    iotc_json_tok toks[IOTC_JSON_MAX_TOKENS];
    char api[IOTC_MAX_API + 1];
    char topic[IOTC_MAX_TOPIC + 1];
    char reply[IOTC_MAX_REPLY];
    char text[IOTC_MAX_REPLY];
    uint32_t counts[IOTC_OUTCOMES];
    /* Correlation ids of the last requests run (a ring; see IOTC_RECENT_IDS). */
    char recent[IOTC_RECENT_IDS][IOTC_MAX_CORRELATION];
    uint8_t recent_len[IOTC_RECENT_IDS];
    uint8_t recent_count, recent_next;
} iotc_device;

/* 0, or -1 when the id is empty, too long or would break topics ('/', '+', '#', NUL). */
int iotc_device_init(iotc_device *dev, const iotc_hal *hal, const char *id, const char *recipient);
/* Subscribe to "<id>/#" (call after every (re)connect). */
int iotc_device_subscribe(iotc_device *dev);
int iotc_device_handle(iotc_device *dev, const char *topic, size_t topic_len, const char *payload, size_t len);
const char *iotc_outcome_name(int outcome);

#endif
