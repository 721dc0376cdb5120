/* Compile-time sizes of every buffer the core uses. A port overrides any of them with -D. */
#ifndef IOTC_CONFIG_H
#define IOTC_CONFIG_H

/* Longest request payload accepted; longer ones are ignored. The platform caps what it sends to a
 * device at 128 bytes (commands/device_apis.py: FT900_PAYLOAD_LIMIT) plus a correlation id. */
#ifndef IOTC_MAX_PAYLOAD
#define IOTC_MAX_PAYLOAD 256
#endif

/* Longest reply. Echoed strings are re-escaped as \uXXXX (ASCII only), so a reply may be up to
 * six times its request; a reply that does not fit is not sent (and counted). */
#ifndef IOTC_MAX_REPLY
#define IOTC_MAX_REPLY 512
#endif

/* Device ids are 40 hex characters on the platform; simulators allow up to 128. */
#ifndef IOTC_MAX_DEVICE_ID
#define IOTC_MAX_DEVICE_ID 128
#endif

/* Topics: "server/" + id + "/" + api. */
#ifndef IOTC_MAX_API
#define IOTC_MAX_API 32
#endif
#define IOTC_MAX_TOPIC (7 + IOTC_MAX_DEVICE_ID + 1 + IOTC_MAX_API + 1)

/* Recipient of the write_uart keyword notification. */
#ifndef IOTC_MAX_RECIPIENT
#define IOTC_MAX_RECIPIENT 128
#endif

/* Repeated requests: the device remembers the correlation ids (strings of up to IOTC_MAX_CORRELATION
 * UTF-8 bytes) of its last IOTC_RECENT_IDS requests run, and does not run one again. A broker node
 * that dies before it sees the device's acknowledgement delivers a QoS 1 request twice. */
#ifndef IOTC_RECENT_IDS
#define IOTC_RECENT_IDS 8
#endif
#ifndef IOTC_MAX_CORRELATION
#define IOTC_MAX_CORRELATION 64
#endif

/* JSON reader bounds: tokens per document (keys count as tokens) and nesting depth. */
#ifndef IOTC_JSON_MAX_TOKENS
#define IOTC_JSON_MAX_TOKENS 48
#endif
#ifndef IOTC_JSON_MAX_DEPTH
#define IOTC_JSON_MAX_DEPTH 8
#endif

#if IOTC_RECENT_IDS < 1 || IOTC_RECENT_IDS > 255 || IOTC_MAX_CORRELATION > 255
#error "IOTC_RECENT_IDS must be 1..255 and IOTC_MAX_CORRELATION at most 255 (8-bit counters)"
#endif

#if IOTC_MAX_PAYLOAD > 65535 || IOTC_JSON_MAX_TOKENS > 65535
#error "token offsets are 16-bit: IOTC_MAX_PAYLOAD and IOTC_JSON_MAX_TOKENS must stay below 65536"
#endif

#endif
