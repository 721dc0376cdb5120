#ifndef IOTC_POSIX_TLS_H
#define IOTC_POSIX_TLS_H

#include <openssl/ssl.h>

/* A client context from PEM text in memory (the private key never touches the disk): TLS 1.2+,
 * the broker verified against `ca` and checked to be `host` (DNS name or IP address). NULL on error,
 * with the reason printed. */
SSL_CTX *tls_client_context(const char *ca, const char *cert, const char *key, const char *host);

#endif
