/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "attestation/x509util.h"
#include "csr.h"
#include "secure.h"
#include "ticket.h"

static void wipe_bytes(ProtobufCBinaryData *b) {
        if (b->data && b->len > 0)
                explicit_bzero(b->data, b->len);
}

/* Runs on every exit of join_ticket_from_proto(): the received secrets never outlive the copy. */
static void ticket_msg_wipep(Cnos__Join__Ticket **m) {
        if (!*m)
                return;
        wipe_bytes(&(*m)->disk_key);
        wipe_bytes(&(*m)->cluster_id);
        wipe_bytes(&(*m)->measurement_salt);
}

static int secret_copy(const ProtobufCBinaryData *b, size_t size, const char *what, uint8_t **ret, struct cnos_err *e) {
        if (b->len != size)
                return cnos_err_set(e, -EBADMSG, "ticket: %s is %zu bytes, not %zu", what, b->len, size);
        *ret = secure_alloc(size);
        if (!*ret)
                return cnos_err_set(e, -ENOMEM, "ticket: cannot allocate locked memory for the %s", what);
        memcpy(*ret, b->data, size);
        return 0;
}

static int cert_parse(const ProtobufCBinaryData *b, const char *what, X509 **ret, struct cnos_err *e) {
        int r;

        if (b->len == 0)
                return cnos_err_set(e, -EBADMSG, "ticket: no %s", what);
        r = x509_from_der(b->data, b->len, ret, e);
        if (r < 0)
                return cnos_err_prefix(e, -EBADMSG, "ticket: %s: ", what);
        return 0;
}

int join_ticket_from_proto(Cnos__Join__Ticket *m, struct join_ticket **ret, struct cnos_err *e) {
        _cleanup_(ticket_msg_wipep) _unused_ Cnos__Join__Ticket *wipe = m;
        _cleanup_ticket_ struct join_ticket *t = NULL;
        int r;

        if (!m || !ret)
                return cnos_err_set(e, -EINVAL, "ticket: invalid argument");

        t = calloc(1, sizeof(*t));
        if (!t)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        r = secret_copy(&m->disk_key, JOIN_DISK_KEY_SIZE, "disk key", &t->disk_key, e);
        if (r < 0)
                return r;
        r = secret_copy(&m->cluster_id, JOIN_CLUSTER_ID_SIZE, "cluster ID", &t->cluster_id, e);
        if (r < 0)
                return r;
        r = secret_copy(&m->measurement_salt, JOIN_SALT_SIZE, "measurement salt", &t->measurement_salt, e);
        if (r < 0)
                return r;

        r = cert_parse(&m->kubelet_certificate, "kubelet certificate", &t->kubelet_cert, e);
        if (r < 0)
                return r;
        r = cert_parse(&m->cluster_ca_certificate, "cluster CA certificate", &t->cluster_ca, e);
        if (r < 0)
                return r;

        t->api_endpoint = strdup(m->api_endpoint ? m->api_endpoint : "");
        if (!t->api_endpoint)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        if (m->n_components > 0) {
                t->components = calloc(m->n_components, sizeof(*t->components));
                if (!t->components)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < m->n_components; i++) {
                const Cnos__Join__Component *c = m->components[i];
                struct join_component *d = &t->components[i];

                t->n_components = i + 1; /* so a failure below frees what this entry got */
                if (!c)
                        return cnos_err_set(e, -EBADMSG, "ticket: component %zu is missing", i);
                if (c->sha256.len != JOIN_COMPONENT_HASH_SIZE)
                        return cnos_err_set(e, -EBADMSG, "ticket: component %zu (%s) has a %zu-byte hash, not a SHA-256", i,
                                            c->url ? c->url : "", c->sha256.len);
                memcpy(d->sha256, c->sha256.data, JOIN_COMPONENT_HASH_SIZE);
                d->url = strdup(c->url ? c->url : "");
                d->install_path = strdup(c->install_path ? c->install_path : "");
                if (!d->url || !d->install_path)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
        }

        *ret = TAKE_PTR(t);
        return 0;
}

/* ---- validation ------------------------------------------------------------------------------------ */

static void x509_store_freep(X509_STORE **p) {
        X509_STORE_free(*p);
}
static void x509_store_ctx_freep(X509_STORE_CTX **p) {
        X509_STORE_CTX_free(*p);
}

/* The kubelet certificate is signed by the cluster CA, which is the trust anchor whether or not it is
 * self-signed (an intermediate works too). Times are checked separately, with skew for notBefore. */
static int check_chain(X509 *leaf, X509 *ca, struct cnos_err *e) {
        _cleanup_(x509_store_ctx_freep) X509_STORE_CTX *ctx = NULL;
        _cleanup_(x509_store_freep) X509_STORE *store = NULL;
        int err;

        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        if (!store || !ctx || X509_STORE_add_cert(store, ca) != 1 || X509_STORE_CTX_init(ctx, store, leaf, NULL) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -ENOMEM, "ticket chain: cannot set up certificate verification");
        }
        X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
        if (X509_verify_cert(ctx) == 1) {
                ERR_clear_error();
                return 0;
        }
        ERR_clear_error();
        err = X509_STORE_CTX_get_error(ctx);
        return cnos_err_set(e, -EKEYREJECTED, "ticket chain: the kubelet certificate does not chain to the cluster CA: %s",
                            X509_verify_cert_error_string(err));
}

static int check_times(X509 *c, const char *what, time_t now, struct cnos_err *e) {
        time_t latest = now + JOIN_CLOCK_SKEW_SEC;

        if (X509_cmp_time(X509_get0_notAfter(c), &now) <= 0)
                return cnos_err_set(e, -EKEYREJECTED, "ticket validity: the %s has expired (or its notAfter is unreadable)", what);
        if (X509_cmp_time(X509_get0_notBefore(c), &latest) >= 0)
                return cnos_err_set(e, -EKEYREJECTED,
                                    "ticket validity: the %s is not valid yet (notBefore more than %d s ahead of this clock)", what,
                                    JOIN_CLOCK_SKEW_SEC);
        return 0;
}

static bool has_organization(X509 *c, const char *org) {
        X509_NAME *n = X509_get_subject_name(c);

        for (int i = X509_NAME_get_index_by_NID(n, NID_organizationName, -1); i >= 0;
             i = X509_NAME_get_index_by_NID(n, NID_organizationName, i)) {
                const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
                size_t len = strlen(org);

                if (s && (size_t) ASN1_STRING_length(s) == len && memcmp(ASN1_STRING_get0_data(s), org, len) == 0)
                        return true;
        }
        return false;
}

static bool install_path_ok(const char *p) {
        if (!p || p[0] != '/')
                return false;
        for (const char *s = p; (s = strstr(s, "..")); s += 2)
                if (s[-1] == '/' && (s[2] == '/' || s[2] == 0))
                        return false;
        return true;
}

int join_ticket_validate(const struct join_ticket *t, EVP_PKEY *csr_key, const char *node_name, time_t now,
                         struct cnos_err *e) {
        char cn[128], want[128];
        int r;

        if (!t || !csr_key || !node_name)
                return cnos_err_set(e, -EINVAL, "ticket: invalid argument");
        if (!t->kubelet_cert || !t->cluster_ca)
                return cnos_err_set(e, -EBADMSG, "ticket: certificates missing");

        if (X509_check_ca(t->cluster_ca) != 1)
                return cnos_err_set(e, -EKEYREJECTED, "ticket ca: the cluster CA certificate is not a CA (basicConstraints)");

        r = check_chain(t->kubelet_cert, t->cluster_ca, e);
        if (r < 0)
                return r;

        r = check_times(t->kubelet_cert, "kubelet certificate", now, e);
        if (r < 0)
                return r;
        r = check_times(t->cluster_ca, "cluster CA certificate", now, e);
        if (r < 0)
                return r;

        if (EVP_PKEY_eq(X509_get0_pubkey(t->kubelet_cert), csr_key) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EKEYREJECTED, "ticket key: the kubelet certificate is not for the key of this node's CSR");
        }

        (void) snprintf(want, sizeof(want), CSR_CN_PREFIX "%s", node_name);
        r = x509_subject_cn(t->kubelet_cert, cn, sizeof(cn));
        if (r < 0)
                return cnos_err_set(e, -EKEYREJECTED, "ticket subject: the kubelet certificate has no single printable CN");
        if (strcmp(cn, want) != 0)
                return cnos_err_set(e, -EKEYREJECTED, "ticket subject: the kubelet certificate is for CN=%s, not CN=%s", cn, want);
        if (!has_organization(t->kubelet_cert, CSR_ORGANIZATION))
                return cnos_err_set(e, -EKEYREJECTED, "ticket subject: the kubelet certificate lacks O=" CSR_ORGANIZATION);

        if (X509_check_purpose(t->kubelet_cert, X509_PURPOSE_SSL_CLIENT, 0) != 1) {
                ERR_clear_error();
                return cnos_err_set(e, -EKEYREJECTED, "ticket usage: the kubelet certificate is not for TLS client authentication");
        }

        if (!t->api_endpoint || !*t->api_endpoint)
                return cnos_err_set(e, -EBADMSG, "ticket endpoint: no API server endpoint");

        for (size_t i = 0; i < t->n_components; i++) {
                const struct join_component *c = &t->components[i];

                if (!c->url || !*c->url)
                        return cnos_err_set(e, -EBADMSG, "ticket component: component %zu has no URL", i);
                if (!install_path_ok(c->install_path))
                        return cnos_err_set(e, -EBADMSG, "ticket component: %s has install path \"%s\", not an absolute path without ..",
                                            c->url, c->install_path ? c->install_path : "");
        }
        return 0;
}

void join_ticket_free(struct join_ticket *t) {
        if (!t)
                return;
        secure_free(t->disk_key);
        secure_free(t->cluster_id);
        secure_free(t->measurement_salt);
        X509_free(t->kubelet_cert);
        X509_free(t->cluster_ca);
        free(t->api_endpoint);
        for (size_t i = 0; t->components && i < t->n_components; i++) {
                free(t->components[i].url);
                free(t->components[i].install_path);
        }
        free(t->components);
        EVP_PKEY_free(t->kubelet_key);
        explicit_bzero(t, sizeof(*t));
        free(t);
}
