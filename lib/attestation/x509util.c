/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "attestation/x509util.h"
#include "cache.h"
#include "fileio.h"

static inline void bio_freep(BIO **p) {
        BIO_free(*p);
}
static inline void x509_store_freep(X509_STORE **p) {
        X509_STORE_free(*p);
}
static inline void x509_store_ctx_freep(X509_STORE_CTX **p) {
        X509_STORE_CTX_free(*p);
}
static inline void asn1_object_freep(ASN1_OBJECT **p) {
        ASN1_OBJECT_free(*p);
}
static inline void asn1_integer_freep(ASN1_INTEGER **p) {
        ASN1_INTEGER_free(*p);
}
static inline void openssl_freep(void *p) {
        OPENSSL_free(*(void **) p);
}

int x509_from_der(const void *der, size_t size, X509 **ret, struct cnos_err *e) {
        const unsigned char *p = der;
        X509 *c;

        if (size == 0)
                return cnos_err_set(e, -EBADMSG, "certificate is empty");
        if (size > X509_INPUT_MAX_SIZE)
                return cnos_err_set(e, -EFBIG, "certificate is %zu bytes, more than the limit of %d", size,
                                    X509_INPUT_MAX_SIZE);

        c = d2i_X509(NULL, &p, (long) size);
        if (!c) {
                ERR_clear_error();
                return cnos_err_set(e, -EBADMSG, "certificate is not valid DER X.509");
        }
        if (p != (const unsigned char *) der + size) {
                X509_free(c);
                return cnos_err_set(e, -EBADMSG, "%zu trailing bytes after the DER certificate",
                                    size - (size_t) (p - (const unsigned char *) der));
        }
        *ret = c;
        return 0;
}

static bool looks_like_pem(const void *data, size_t size) {
        static const char marker[] = "-----BEGIN ";

        return memmem(data, size, marker, strlen(marker)) != NULL;
}

int x509_bundle_from_pem(const void *pem, size_t size, STACK_OF(X509) **ret, struct cnos_err *e) {
        _cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
        _cleanup_(bio_freep) BIO *bio = NULL;

        if (size > X509_INPUT_MAX_SIZE)
                return cnos_err_set(e, -EFBIG, "PEM input is %zu bytes, more than the limit of %d", size,
                                    X509_INPUT_MAX_SIZE);

        certs = sk_X509_new_null();
        bio = BIO_new_mem_buf(pem, (int) size);
        if (!certs || !bio)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        for (size_t i = 0;; i++) {
                _cleanup_(openssl_freep) char *name = NULL, *header = NULL;
                _cleanup_(openssl_freep) unsigned char *der = NULL;
                _cleanup_x509_ X509 *c = NULL;
                long len = 0;
                int r;

                if (!PEM_read_bio(bio, &name, &header, &der, &len)) {
                        unsigned long err = ERR_peek_last_error();

                        ERR_clear_error();
                        if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
                                if (i == 0)
                                        return cnos_err_set(e, -EBADMSG, "no PEM CERTIFICATE block found");
                                break;
                        }
                        return cnos_err_set(e, -EBADMSG, "PEM block %zu is malformed", i + 1);
                }
                if (i >= X509_BUNDLE_MAX_CERTS)
                        return cnos_err_set(e, -E2BIG, "more than %d certificates in the PEM bundle",
                                            X509_BUNDLE_MAX_CERTS);
                if (strcmp(name, "CERTIFICATE") != 0)
                        return cnos_err_set(e, -EBADMSG, "PEM block %zu is a \"%.64s\", not a CERTIFICATE", i + 1,
                                            name);
                if (header && header[0])
                        return cnos_err_set(e, -EBADMSG, "PEM block %zu carries PEM headers", i + 1);
                if (len <= 0)
                        return cnos_err_set(e, -EBADMSG, "PEM block %zu is empty", i + 1);

                r = x509_from_der(der, (size_t) len, &c, e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "PEM block %zu: ", i + 1);
                if (!sk_X509_push(certs, c))
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                c = NULL;
        }

        *ret = TAKE_PTR(certs);
        return 0;
}

int x509_from_der_or_pem(const void *data, size_t size, X509 **ret, struct cnos_err *e) {
        _cleanup_x509_stack_ STACK_OF(X509) *certs = NULL;
        int r;

        if (!looks_like_pem(data, size))
                return x509_from_der(data, size, ret, e);

        r = x509_bundle_from_pem(data, size, &certs, e);
        if (r < 0)
                return r;
        if (sk_X509_num(certs) != 1)
                return cnos_err_set(e, -EBADMSG, "expected one certificate, found %d PEM blocks", sk_X509_num(certs));
        *ret = sk_X509_shift(certs);
        return 0;
}

static int read_cert_file(const char *path, uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        int r;

        r = read_file(path, X509_INPUT_MAX_SIZE, ret, ret_size);
        if (r < 0)
                return cnos_err_set(e, r, "cannot read %s: %s", path, strerror(-r));
        return 0;
}

int x509_from_file(const char *path, X509 **ret, struct cnos_err *e) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int r;

        r = read_cert_file(path, &data, &size, e);
        if (r < 0)
                return r;
        r = x509_from_der_or_pem(data, size, ret, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", path);
        return 0;
}

int x509_bundle_from_pem_file(const char *path, STACK_OF(X509) **ret, struct cnos_err *e) {
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int r;

        r = read_cert_file(path, &data, &size, e);
        if (r < 0)
                return r;
        r = x509_bundle_from_pem(data, size, ret, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", path);
        return 0;
}

char *x509_time_iso8601(time_t t, char buf[static X509_ISO8601_MAX]) {
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, X509_ISO8601_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, X509_ISO8601_MAX, "@%lld", (long long) t);
        return buf;
}

bool x509_is_self_signed(X509 *c) {
        EVP_PKEY *pk;
        bool ok;

        if (!c)
                return false;
        pk = X509_get0_pubkey(c);
        ok = pk && X509_check_issued(c, c) == X509_V_OK && X509_verify(c, pk) == 1;
        ERR_clear_error();
        return ok;
}

int x509_subject_cn(X509 *c, char *buf, size_t size) {
        X509_NAME *name = X509_get_subject_name(c);
        const unsigned char *s;
        ASN1_STRING *str;
        int idx, len;

        if (!name)
                return -ENOENT;
        idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
        if (idx < 0)
                return -ENOENT;
        if (X509_NAME_get_index_by_NID(name, NID_commonName, idx) >= 0)
                return -ENOTUNIQ;
        str = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
        if (!str)
                return -ENOENT;
        s = ASN1_STRING_get0_data(str);
        len = ASN1_STRING_length(str);
        if (len < 0 || (size_t) len >= size)
                return -ENOBUFS;
        for (int i = 0; i < len; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return -EBADMSG;
        memcpy(buf, s, (size_t) len);
        buf[len] = 0;
        return 0;
}

int x509_ext_by_oid(X509 *c, const char *oid, const uint8_t **ret, size_t *ret_size) {
        _cleanup_(asn1_object_freep) ASN1_OBJECT *obj = NULL;
        ASN1_OCTET_STRING *os;
        X509_EXTENSION *ext;
        int idx;

        obj = OBJ_txt2obj(oid, 1);
        if (!obj) {
                ERR_clear_error();
                return -EINVAL;
        }
        idx = X509_get_ext_by_OBJ(c, obj, -1);
        if (idx < 0)
                return -ENOENT;
        if (X509_get_ext_by_OBJ(c, obj, idx) >= 0)
                return -ENOTUNIQ;
        ext = X509_get_ext(c, idx);
        os = ext ? X509_EXTENSION_get_data(ext) : NULL;
        if (!os || ASN1_STRING_length(os) < 0)
                return -EBADMSG;
        *ret = ASN1_STRING_get0_data(os);
        *ret_size = (size_t) ASN1_STRING_length(os);
        return 0;
}

int x509_ext_integer(X509 *c, const char *oid, int64_t *ret) {
        _cleanup_(asn1_integer_freep) ASN1_INTEGER *i = NULL;
        const uint8_t *data, *p;
        size_t size;
        int64_t v;
        int r;

        r = x509_ext_by_oid(c, oid, &data, &size);
        if (r < 0)
                return r;
        if (size == 0 || size > 64)
                return -EBADMSG;
        p = data;
        i = d2i_ASN1_INTEGER(NULL, &p, (long) size);
        if (!i || p != data + size || ASN1_INTEGER_get_int64(&v, i) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = v;
        return 0;
}

/* leaf -> untrusted -> a root in store, at `at`; the errors of x509_verify_chain_at(). */
static int verify_in_store(
                X509_STORE *store, X509 *leaf, STACK_OF(X509) *untrusted, time_t at, STACK_OF(X509) **ret_chain, struct cnos_err *e) {
        _cleanup_(x509_store_ctx_freep) X509_STORE_CTX *ctx = NULL;
        char when[X509_ISO8601_MAX], cn[128];
        X509_VERIFY_PARAM *param;
        X509 *bad;
        int err, depth;

        ctx = X509_STORE_CTX_new();
        if (!ctx || X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "cannot set up certificate verification");
        }

        param = X509_STORE_CTX_get0_param(ctx);
        /* Sets X509_V_FLAG_USE_CHECK_TIME: validity is judged at `at`, never at the wall clock. */
        X509_VERIFY_PARAM_set_time(param, at);
        (void) X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);

        if (X509_verify_cert(ctx) == 1) {
                ERR_clear_error();
                if (ret_chain) {
                        *ret_chain = X509_STORE_CTX_get1_chain(ctx);
                        if (!*ret_chain)
                                return cnos_err_set(e, -ENOMEM, "out of memory");
                }
                return 0;
        }
        ERR_clear_error();

        err = X509_STORE_CTX_get_error(ctx);
        depth = X509_STORE_CTX_get_error_depth(ctx);
        x509_time_iso8601(at, when);
        if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID)
                return cnos_err_set(e, -EKEYEXPIRED, "%s (at %s)", X509_verify_cert_error_string(err), when);

        bad = X509_STORE_CTX_get_current_cert(ctx);
        if (!bad || x509_subject_cn(bad, cn, sizeof(cn)) < 0)
                strcpy(cn, "?");
        return cnos_err_set(e, -EKEYREJECTED, "%s (depth %d, CN=%s)", X509_verify_cert_error_string(err), depth, cn);
}

int x509_verify_chain_at(
                X509 *leaf, STACK_OF(X509) *untrusted, X509 *root, time_t at, STACK_OF(X509) **ret_chain, struct cnos_err *e) {
        _cleanup_(x509_store_freep) X509_STORE *store = NULL;

        if (!leaf || !root)
                return cnos_err_set(e, -EINVAL, "no certificate or no root given");
        /* OpenSSL does not check a trust anchor's own signature (unless X509_V_FLAG_CHECK_SS_SIGNATURE);
         * this does, once, with a clearer message. */
        if (!x509_is_self_signed(root))
                return cnos_err_set(e, -EKEYREJECTED, "root certificate is not self-signed");

        store = X509_STORE_new();
        if (!store || X509_STORE_add_cert(store, root) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "cannot set up certificate verification");
        }
        return verify_in_store(store, leaf, untrusted, at, ret_chain, e);
}

/* ---- trust anchors, prepared once -------------------------------------------------------- */

struct x509_anchors {
        X509_STORE *store;         /* the roots */
        STACK_OF(X509) *untrusted; /* the intermediates (references of their own) */
        size_t n_roots;
        /* Leaves that chained to this store, keyed by their exact DER (lib/cache.h). The aux is the
         * chain's validity window: what a verification at another time would still depend on. */
        struct cache verified;
};

struct validity {
        time_t not_before; /* the latest notBefore of the chain */
        time_t not_after;  /* the earliest notAfter of the chain */
};

static int x509_up_ref_obj(void *x) {
        return X509_up_ref(x);
}
static void x509_unref_obj(void *x) {
        X509_free(x);
}
static const struct cache_ops verified_ops = { .up_ref = x509_up_ref_obj, .unref = x509_unref_obj };

void x509_anchors_free(struct x509_anchors *a) {
        if (!a)
                return;
        cache_done(&a->verified);
        X509_STORE_free(a->store);
        x509_stack_free(a->untrusted);
        free(a);
}

int x509_anchors_new(STACK_OF(X509) *bundle, struct x509_anchors **ret, struct cnos_err *e) {
        _cleanup_(x509_anchors_freep) struct x509_anchors *a = NULL;

        if (!bundle || !ret)
                return cnos_err_set(e, -EINVAL, "no certificate bundle given");
        a = calloc(1, sizeof(*a));
        if (!a)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        cache_init(&a->verified, &verified_ops, X509_ANCHORS_CACHE_MAX_CERT);
        a->store = X509_STORE_new();
        a->untrusted = sk_X509_new_null();
        if (!a->store || !a->untrusted) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        for (int i = 0; i < sk_X509_num(bundle); i++) {
                X509 *c = sk_X509_value(bundle, i);

                /* A root's own signature is checked here, once: OpenSSL does not check a trust
                 * anchor's. A certificate that names itself but whose signature fails is no root. */
                if (x509_is_self_signed(c)) {
                        if (X509_STORE_add_cert(a->store, c) != 1) {
                                ERR_clear_error();
                                return cnos_err_set(e, -ENOMEM, "out of memory");
                        }
                        a->n_roots++;
                } else {
                        if (X509_up_ref(c) != 1)
                                return cnos_err_set(e, -ENOMEM, "out of memory");
                        if (!sk_X509_push(a->untrusted, c)) {
                                X509_free(c);
                                return cnos_err_set(e, -ENOMEM, "out of memory");
                        }
                }
        }
        if (a->n_roots == 0)
                return cnos_err_set(e, -EINVAL, "the bundle holds no self-signed root");
        *ret = TAKE_PTR(a);
        return 0;
}

static int asn1_time_to_time_t(const ASN1_TIME *t, time_t *ret) {
        struct tm tm;

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        *ret = timegm(&tm);
        return 0;
}

/* The window in which every certificate of the chain is valid, as X509_verify_cert() judges it:
 * notBefore <= at < notAfter. */
static int chain_validity(STACK_OF(X509) *chain, struct validity *ret) {
        struct validity v = { .not_before = INT64_MIN, .not_after = INT64_MAX };

        if (sk_X509_num(chain) <= 0)
                return -EINVAL;
        for (int i = 0; i < sk_X509_num(chain); i++) {
                X509 *c = sk_X509_value(chain, i);
                time_t nb, na;

                if (asn1_time_to_time_t(X509_get0_notBefore(c), &nb) < 0 ||
                    asn1_time_to_time_t(X509_get0_notAfter(c), &na) < 0)
                        return -EBADMSG;
                v.not_before = MAX(v.not_before, nb);
                v.not_after = MIN(v.not_after, na);
        }
        *ret = v;
        return 0;
}

struct validity_lookup {
        struct validity v;
        bool found;
};

static void read_validity(void **aux, void *userdata) {
        struct validity_lookup *l = userdata;

        if (*aux) {
                l->v = *(struct validity *) *aux;
                l->found = true;
        }
}

int x509_anchors_verify_der(struct x509_anchors *a, const void *der, size_t size, time_t at, X509 **ret_leaf, struct cnos_err *e) {
        _cleanup_x509_stack_ STACK_OF(X509) *chain = NULL;
        _cleanup_x509_ X509 *leaf = NULL;
        struct validity_lookup l = {};
        struct validity *v;
        int r;

        if (!a || !der || !ret_leaf)
                return cnos_err_set(e, -EINVAL, "invalid arguments");

        /* A leaf that chained before, to these very roots, still chains: only the time can differ.
         * Inside the window the result is the one a verification gives; outside it, verify again,
         * for the refusal with its reason. */
        leaf = cache_get(&a->verified, der, size, read_validity, &l);
        if (leaf && l.found && at >= l.v.not_before && at < l.v.not_after) {
                *ret_leaf = TAKE_PTR(leaf);
                return 0;
        }
        X509_free(TAKE_PTR(leaf));

        r = x509_from_der(der, size, &leaf, e);
        if (r < 0)
                return r;
        r = verify_in_store(a->store, leaf, a->untrusted, at, &chain, e);
        if (r < 0)
                return r;

        v = malloc(sizeof(*v));
        if (v && chain_validity(chain, v) == 0 && at >= v->not_before && at < v->not_after)
                cache_put(&a->verified, der, size, leaf, TAKE_PTR(v)); /* a window that holds `at`, or nothing */
        free(v);
        *ret_leaf = TAKE_PTR(leaf);
        return 0;
}

void x509_anchors_cache_stats(struct x509_anchors *a, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses) {
        cache_stats(&a->verified, ret_entries, ret_hits, ret_misses);
}
