#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

static SSL_CTX *fail(SSL_CTX *ctx, const char *what)
{
    unsigned long e = ERR_get_error();
    fprintf(stderr, "iotcloud-device: TLS setup: %s (%s)\n", what, e ? ERR_reason_error_string(e) : "no detail");
    SSL_CTX_free(ctx);
    return NULL;
}

static int looks_like_ip(const char *host)
{
    return strspn(host, "0123456789.") == strlen(host) || strchr(host, ':') != NULL;
}

SSL_CTX *tls_client_context(const char *ca, const char *cert, const char *key, const char *host)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    BIO *bio;
    X509 *x;
    EVP_PKEY *pkey;
    STACK_OF(X509_INFO) *infos;
    int i, added = 0;
    X509_VERIFY_PARAM *param;

    if (ctx == NULL) return fail(NULL, "no context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    bio = BIO_new_mem_buf(ca, -1);
    infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    for (i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->x509 && X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), info->x509) == 1) added++;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    if (added == 0) return fail(ctx, "the CA PEM holds no certificate");

    bio = BIO_new_mem_buf(cert, -1);
    x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) { X509_free(x); BIO_free(bio); return fail(ctx, "bad device certificate"); }
    X509_free(x);
    /* Intermediates after the leaf go to the chain. */
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1) { X509_free(x); BIO_free(bio); return fail(ctx, "bad chain"); }
    ERR_clear_error();
    BIO_free(bio);

    bio = BIO_new_mem_buf(key, -1);
    pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL || SSL_CTX_use_PrivateKey(ctx, pkey) != 1) { EVP_PKEY_free(pkey); return fail(ctx, "bad private key"); }
    EVP_PKEY_free(pkey);
    if (SSL_CTX_check_private_key(ctx) != 1) return fail(ctx, "the private key does not match the certificate");

    param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if ((looks_like_ip(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1)
        return fail(ctx, "cannot check the broker's name");
    return ctx;
}
