/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "ossl.h"
#include "attestation/tdx.h"
#include "cache.h"
#include "cursor.h"
#include "digest.h"
#include "fileio.h"
#include "hex.h"
#include "secure.h"

/* Quote layout (Intel TDX DCAP Quoting Library API, appendix "Quote format"):
 *   header 48 | [v5: body type u16, body size u32] | TD quote body 584/648 | sig data size u32 |
 *   sig data: ECDSA sig 64 | attestation key 64 | cert data type u16 (6) | size u32 |
 *     QE report 384 | QE report sig 64 | QE auth size u16 | QE auth data | cert type u16 (5) |
 *     size u32 | PCK chain PEM
 * Integers are little-endian; signatures and keys are big-endian r||s and x||y. */

#define SGX_EXT_OID "1.2.840.113741.1.13.1"


static void x509_chain_freep(STACK_OF(X509) **s) {
        if (*s)
                sk_X509_pop_free(*s, X509_free);
}

static void asn1_seq_freep(STACK_OF(ASN1_TYPE) **s) {
        if (*s)
                sk_ASN1_TYPE_pop_free(*s, ASN1_TYPE_free);
}

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static void openssl_freep(void *p) {
        OPENSSL_free(*(void **) p);
}

/* Removes a configfs-tsm report entry and frees its path. */
static void rmdir_freep(char **path) {
        if (*path) {
                (void) rmdir(*path);
                free(*path);
        }
}

/* ---- parsing ------------------------------------------------------------------------------ */

static int need(struct cursor *c, size_t n, const char *field, struct cnos_err *e) {
        if (n > cursor_remaining(c))
                return cnos_err_set(e, -EBADMSG, "tdx quote: %s at offset %zu: needs %zu bytes, %zu left", field,
                                    cursor_offset(c), n, cursor_remaining(c));
        return 0;
}

static int take_bytes(struct cursor *c, void *out, size_t n, const char *field, struct cnos_err *e) {
        int r = need(c, n, field, e);
        if (r < 0)
                return r;
        return cursor_read(c, out, n);
}

static int take_ptr(struct cursor *c, size_t n, const uint8_t **ret, const char *field, struct cnos_err *e) {
        int r = need(c, n, field, e);
        if (r < 0)
                return r;
        return cursor_take(c, n, ret);
}

static int take_le16(struct cursor *c, uint16_t *ret, const char *field, struct cnos_err *e) {
        int r = need(c, 2, field, e);
        if (r < 0)
                return r;
        return cursor_le16(c, ret);
}

static int take_le32(struct cursor *c, uint32_t *ret, const char *field, struct cnos_err *e) {
        int r = need(c, 4, field, e);
        if (r < 0)
                return r;
        return cursor_le32(c, ret);
}

/* Splits off a length-prefixed region after checking the length against a cap and what is left. */
static int take_region(struct cursor *c, size_t len, size_t cap, size_t len_off, struct cursor *ret, const char *field,
                       struct cnos_err *e) {
        if (len > cap)
                return cnos_err_set(e, -E2BIG, "tdx quote: %s size %zu at offset %zu exceeds the %zu-byte cap", field,
                                    len, len_off, cap);
        if (len > cursor_remaining(c))
                return cnos_err_set(e, -EBADMSG, "tdx quote: %s size %zu at offset %zu exceeds the %zu bytes left",
                                    field, len, len_off, cursor_remaining(c));
        return cursor_sub(c, len, ret);
}

static int parse_body(struct cursor *b, uint16_t body_type, struct tdx_td_body *ret, struct cnos_err *e) {
        struct {
                void *dst;
                size_t n;
                const char *name;
        } fields[] = {
                { ret->tee_tcb_svn, sizeof(ret->tee_tcb_svn), "TEE_TCB_SVN" },
                { ret->mr_seam, TDX_MR_SIZE, "MRSEAM" },
                { ret->mr_signer_seam, TDX_MR_SIZE, "MRSIGNERSEAM" },
                { ret->seam_attributes, sizeof(ret->seam_attributes), "SEAMATTRIBUTES" },
                { ret->td_attributes, sizeof(ret->td_attributes), "TDATTRIBUTES" },
                { ret->xfam, sizeof(ret->xfam), "XFAM" },
                { ret->mr_td, TDX_MR_SIZE, "MRTD" },
                { ret->mr_config_id, TDX_MR_SIZE, "MRCONFIGID" },
                { ret->mr_owner, TDX_MR_SIZE, "MROWNER" },
                { ret->mr_owner_config, TDX_MR_SIZE, "MROWNERCONFIG" },
                { ret->rtmr[0], TDX_MR_SIZE, "RTMR0" },
                { ret->rtmr[1], TDX_MR_SIZE, "RTMR1" },
                { ret->rtmr[2], TDX_MR_SIZE, "RTMR2" },
                { ret->rtmr[3], TDX_MR_SIZE, "RTMR3" },
                { ret->report_data, TDX_REPORT_DATA_SIZE, "REPORTDATA" },
                { ret->tee_tcb_svn2, sizeof(ret->tee_tcb_svn2), "TEE_TCB_SVN2" },
                { ret->mr_servicetd, TDX_MR_SIZE, "MRSERVICETD" },
        };
        size_t n = body_type == TDX_BODY_TYPE_TDX15 ? ELEMENTSOF(fields) : ELEMENTSOF(fields) - 2;
        int r;

        for (size_t i = 0; i < n; i++) {
                r = take_bytes(b, fields[i].dst, fields[i].n, fields[i].name, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void parse_qe_report(const uint8_t *p, struct tdx_qe_report *ret) {
        /* SGX REPORT body: CPUSVN 0, MISCSELECT 16, ATTRIBUTES 48, MRENCLAVE 64, MRSIGNER 128,
         * ISVPRODID 256, ISVSVN 258, REPORTDATA 320. */
        memcpy(ret->cpu_svn, p, 16);
        ret->misc_select = load_le32(p + 16);
        memcpy(ret->attributes, p + 48, 16);
        memcpy(ret->mr_enclave, p + 64, 32);
        memcpy(ret->mr_signer, p + 128, 32);
        ret->isv_prod_id = load_le16(p + 256);
        ret->isv_svn = load_le16(p + 258);
        memcpy(ret->report_data, p + 320, 64);
}

int tdx_quote_parse(const void *data, size_t size, struct tdx_quote *ret, struct cnos_err *e) {
        struct cursor c = cursor_init(data, size), body, sig, cd;
        struct tdx_quote q = {};
        uint32_t u32;
        size_t off;
        int r;

        if (!data && size > 0)
                return cnos_err_set(e, -EINVAL, "tdx quote: no data");

        /* Header */
        if ((r = take_le16(&c, &q.version, "header version", e)) < 0 ||
            (r = take_le16(&c, &q.att_key_type, "header attestation key type", e)) < 0 ||
            (r = take_le32(&c, &q.tee_type, "header TEE type", e)) < 0 ||
            (r = take_le16(&c, &q.qe_svn, "header QE SVN", e)) < 0 ||
            (r = take_le16(&c, &q.pce_svn, "header PCE SVN", e)) < 0 ||
            (r = take_bytes(&c, q.qe_vendor_id, sizeof(q.qe_vendor_id), "header QE vendor ID", e)) < 0 ||
            (r = take_bytes(&c, q.user_data, sizeof(q.user_data), "header user data", e)) < 0)
                return r;
        if (q.version != 4 && q.version != 5)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tdx quote: version at offset 0: unsupported quote version %u (want 4 or 5)",
                                    q.version);
        if (q.att_key_type != TDX_ATT_KEY_ECDSA_P256)
                return cnos_err_set(e, -EPROTONOSUPPORT,
                                    "tdx quote: attestation key type at offset 2: unsupported type %u (want 2, ECDSA-256-with-P-256)",
                                    q.att_key_type);
        if (q.tee_type != TDX_TEE_TYPE)
                return cnos_err_set(e, -EPROTONOSUPPORT, "tdx quote: TEE type at offset 4: 0x%x is not TDX (0x81)", q.tee_type);

        /* Body (v5: behind a type/size descriptor) */
        if (q.version == 5) {
                uint32_t want;

                if ((r = take_le16(&c, &q.body_type, "body type", e)) < 0)
                        return r;
                off = cursor_offset(&c);
                if ((r = take_le32(&c, &q.body_size, "body size", e)) < 0)
                        return r;
                if (q.body_type == TDX_BODY_TYPE_TDX10)
                        want = TDX_BODY10_SIZE;
                else if (q.body_type == TDX_BODY_TYPE_TDX15)
                        want = TDX_BODY15_SIZE;
                else
                        return cnos_err_set(e, -EPROTONOSUPPORT,
                                            "tdx quote: body type at offset %d: unsupported type %u (want 2 = TDX 1.0 or 3 = TDX 1.5)",
                                            TDX_QUOTE_HEADER_SIZE, q.body_type);
                if (q.body_size != want)
                        return cnos_err_set(e, -EBADMSG, "tdx quote: body size at offset %zu: %u, but body type %u is %u bytes",
                                            off, q.body_size, q.body_type, want);
        } else {
                q.body_type = TDX_BODY_TYPE_TDX10;
                q.body_size = TDX_BODY10_SIZE;
        }
        if ((r = need(&c, q.body_size, "TD quote body", e)) < 0)
                return r;
        r = cursor_sub(&c, q.body_size, &body);
        if (r < 0)
                return r;
        r = parse_body(&body, q.body_type, &q.body, e);
        if (r < 0)
                return r;
        q.signed_data = data;
        q.signed_size = cursor_offset(&c);

        /* Signature data */
        off = cursor_offset(&c);
        if ((r = take_le32(&c, &q.sig_data_size, "signature data size", e)) < 0)
                return r;
        r = take_region(&c, q.sig_data_size, TDX_SIG_DATA_MAX, off, &sig, "signature data", e);
        if (r < 0)
                return r;
        if ((r = take_bytes(&sig, q.signature, sizeof(q.signature), "quote signature", e)) < 0 ||
            (r = take_bytes(&sig, q.attestation_key, sizeof(q.attestation_key), "attestation key", e)) < 0)
                return r;
        off = cursor_offset(&sig);
        if ((r = take_le16(&sig, &q.cert_data_type, "certification data type", e)) < 0)
                return r;
        if (q.cert_data_type != TDX_CERT_DATA_QE_REPORT)
                return cnos_err_set(e, -EPROTONOSUPPORT,
                                    "tdx quote: certification data type at offset %zu: %u, want 6 (QE report certification data)",
                                    off, q.cert_data_type);
        off = cursor_offset(&sig);
        if ((r = take_le32(&sig, &q.cert_data_size, "certification data size", e)) < 0)
                return r;
        r = take_region(&sig, q.cert_data_size, TDX_CERT_DATA_MAX, off, &cd, "certification data", e);
        if (r < 0)
                return r;

        /* QE report certification data */
        if ((r = take_ptr(&cd, TDX_QE_REPORT_SIZE, &q.qe_report_raw, "QE report", e)) < 0)
                return r;
        parse_qe_report(q.qe_report_raw, &q.qe_report);
        if ((r = take_bytes(&cd, q.qe_report_signature, sizeof(q.qe_report_signature), "QE report signature", e)) < 0)
                return r;
        off = cursor_offset(&cd);
        if ((r = take_le16(&cd, &q.qe_auth_data_size, "QE authentication data size", e)) < 0)
                return r;
        if (q.qe_auth_data_size > TDX_QE_AUTH_DATA_MAX)
                return cnos_err_set(e, -E2BIG, "tdx quote: QE authentication data size %u at offset %zu exceeds the %u-byte cap",
                                    q.qe_auth_data_size, off, TDX_QE_AUTH_DATA_MAX);
        if ((r = take_ptr(&cd, q.qe_auth_data_size, &q.qe_auth_data, "QE authentication data", e)) < 0)
                return r;
        off = cursor_offset(&cd);
        if ((r = take_le16(&cd, &q.pck_cert_data_type, "QE certification data type", e)) < 0)
                return r;
        if (q.pck_cert_data_type != TDX_CERT_DATA_PCK_CHAIN)
                return cnos_err_set(e, -EPROTONOSUPPORT,
                                    "tdx quote: QE certification data type at offset %zu: %u, want 5 (PCK certificate chain)",
                                    off, q.pck_cert_data_type);
        off = cursor_offset(&cd);
        if ((r = take_le32(&cd, &u32, "PCK certificate chain size", e)) < 0)
                return r;
        if (u32 == 0)
                return cnos_err_set(e, -EBADMSG, "tdx quote: PCK certificate chain size at offset %zu is 0", off);
        if (u32 > cursor_remaining(&cd))
                return cnos_err_set(e, -EBADMSG,
                                    "tdx quote: PCK certificate chain size %u at offset %zu exceeds the %zu bytes left in the certification data",
                                    u32, off, cursor_remaining(&cd));
        q.pck_chain_size = u32;
        if ((r = cursor_take(&cd, q.pck_chain_size, &q.pck_chain)) < 0)
                return r;

        if (!cursor_eof(&cd))
                return cnos_err_set(e, -EBADMSG, "tdx quote: certification data: %zu unexpected bytes at offset %zu",
                                    cursor_remaining(&cd), cursor_offset(&cd));
        if (!cursor_eof(&sig))
                return cnos_err_set(e, -EBADMSG, "tdx quote: signature data: %zu unexpected bytes at offset %zu",
                                    cursor_remaining(&sig), cursor_offset(&sig));

        q.size = cursor_offset(&c);
        q.trailing = cursor_remaining(&c);
        *ret = q;
        return 0;
}

/* ---- caches of parsed objects ------------------------------------------------------------
 *
 * OpenSSL 3.0 decodes a certificate's public key through its decoder framework while it parses the
 * certificate (d2i_X509): about 300 us for a P-256 key, more than the four ECDSA checks of a whole
 * quote. Building the attestation key (a new EC_GROUP each time) and reading the PCK certificate's
 * SGX extension cost about 60 us each more. Yet every quote carries the same Intel SGX Root CA and
 * PCK Platform (or Processor) CA, and a node that rejoins brings the same PCK leaf and attestation
 * key again. So two caches (lib/cache.h, whose rules they follow), process-wide, keep the parsed
 * objects: certificates keyed by the exact PEM block they were parsed from (with a PCK leaf's SGX
 * extension once read, as the entry's aux), and attestation keys keyed by their exact 64 bytes.
 *
 * Everything that depends on the call is still checked on every call: the trusted root, every
 * validity time at the caller's `now`, both certificate signatures (X509_verify_cert), the issuing
 * CA's name, the QE report data, the QE report and quote signatures, and the policy. The caches
 * save decoding, never a check. Real certificates are under 2 KiB; CACHE_MAX_KEY bounds a key. */
#define CACHE_MAX_KEY 8192U

static int x509_up_ref(void *x) {
        return X509_up_ref(x);
}
static void x509_unref(void *x) {
        X509_free(x);
}
static int pkey_up_ref(void *k) {
        return EVP_PKEY_up_ref(k);
}
static void pkey_unref(void *k) {
        EVP_PKEY_free(k);
}

static const struct cache_ops cert_cache_ops = { .up_ref = x509_up_ref, .unref = x509_unref };
static const struct cache_ops att_key_cache_ops = { .up_ref = pkey_up_ref, .unref = pkey_unref };
static struct cache cert_cache = CACHE_INIT(&cert_cache_ops, CACHE_MAX_KEY);
static struct cache att_key_cache = CACHE_INIT(&att_key_cache_ops, CACHE_MAX_KEY);

struct sgx_lookup {
        struct tdx_pck_info *info;
        bool found; /* sgx_read: copied into info; sgx_write: the entry took info */
};

static void sgx_read(void **aux, void *userdata) {
        struct sgx_lookup *l = userdata;

        if (*aux) {
                *l->info = *(struct tdx_pck_info *) *aux;
                l->found = true;
        }
}

static void sgx_write(void **aux, void *userdata) {
        struct sgx_lookup *l = userdata;

        if (*aux)
                return; /* recorded meanwhile: the same certificate, the same extension */
        *aux = l->info;
        l->found = true;
}

/* The SGX extension recorded for this very certificate object, if any. */
static bool cert_cache_get_sgx(X509 *leaf, struct tdx_pck_info *ret) {
        struct sgx_lookup l = { .info = ret };

        (void) cache_update(&cert_cache, leaf, sgx_read, &l);
        return l.found;
}

static void cert_cache_put_sgx(X509 *leaf, const struct tdx_pck_info *info) {
        struct tdx_pck_info *copy = malloc(sizeof(*copy));
        struct sgx_lookup l = {};

        if (!copy)
                return;
        *copy = *info;
        l.info = copy;
        if (!cache_update(&cert_cache, leaf, sgx_write, &l) || !l.found)
                free(copy);
}

/* Test hook for tests/unit/test-verify-cache.c, deliberately not in tdx.h: how many objects a cache
 * holds (which: 0 certificates, 1 attestation keys), and how many lookups found one or not since
 * the process started. */
void tdx_cache_stats(int which, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses);
void tdx_cache_stats(int which, size_t *ret_entries, uint64_t *ret_hits, uint64_t *ret_misses) {
        cache_stats(which == 0 ? &cert_cache : &att_key_cache, ret_entries, ret_hits, ret_misses);
}

/* ---- certificates ------------------------------------------------------------------------- */

static size_t chain_offset(const struct tdx_quote *q, const uint8_t *p) {
        return (size_t) (p - q->signed_data);
}

static bool is_pem_space(uint8_t ch) {
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static bool is_base64_line_byte(uint8_t ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/' ||
                ch == '=' || ch == '\r' || ch == '\n';
}

static bool all_nul(const uint8_t *p, const uint8_t *end) {
        for (; p < end; p++)
                if (*p)
                        return false;
        return true;
}

/* Decodes one "-----BEGIN CERTIFICATE-----" ... "-----END CERTIFICATE-----" block, strictly: one
 * certificate, no PEM headers, no bytes after the DER. */
static int decode_pem_cert(const uint8_t *p, size_t n, X509 **ret) {
        _cleanup_(BIO_freep) BIO *bio = NULL;
        _cleanup_(openssl_freep) char *name = NULL, *header = NULL;
        _cleanup_(openssl_freep) unsigned char *der = NULL;
        const unsigned char *dp;
        long len = 0;
        X509 *x;

        if (n > INT_MAX)
                return -E2BIG;
        bio = BIO_new_mem_buf(p, (int) n);
        if (!bio)
                return -ENOMEM;
        if (PEM_read_bio(bio, &name, &header, &der, &len) != 1)
                return -EBADMSG;
        if (strcmp(name, "CERTIFICATE") != 0 || header[0] != 0 || len <= 0)
                return -EBADMSG;
        dp = der;
        x = d2i_X509(NULL, &dp, len);
        if (!x)
                return -EBADMSG;
        if (dp != der + len) {
                X509_free(x);
                return -EBADMSG;
        }
        *ret = x;
        return 0;
}

/* decode_pem_cert() through the cache. */
static int load_cert(const uint8_t *p, size_t n, X509 **ret) {
        X509 *x;
        int r;

        x = cache_get(&cert_cache, p, n, NULL, NULL);
        if (x) {
                *ret = x;
                return 0;
        }
        r = decode_pem_cert(p, n, &x);
        if (r < 0)
                return r;
        cache_put(&cert_cache, p, n, x, NULL);
        *ret = x;
        return 0;
}

/* The PCK chain in the order the quote carries it: leaf first. */
static int load_pck_chain(const struct tdx_quote *q, STACK_OF(X509) **ret, struct cnos_err *e) {
        static const char begin_line[] = "-----BEGIN CERTIFICATE-----", end_line[] = "-----END CERTIFICATE-----";
        _cleanup_(x509_chain_freep) STACK_OF(X509) *chain = NULL;
        const uint8_t *p = q->pck_chain, *end = q->pck_chain + q->pck_chain_size;
        int r;

        chain = sk_X509_new_null();
        if (!chain)
                return -ENOMEM;

        for (;;) {
                const uint8_t *stop, *block_end;
                _cleanup_(X509_freep) X509 *x = NULL;

                while (p < end && is_pem_space(*p))
                        p++;
                if (p == end || all_nul(p, end)) /* some quoting enclaves NUL-terminate the chain */
                        break;
                if ((size_t) (end - p) < strlen(begin_line) || memcmp(p, begin_line, strlen(begin_line)) != 0)
                        return cnos_err_set(e, -EBADMSG, "pck-chain-format: offset %zu: expected '%s'", chain_offset(q, p),
                                            begin_line);
                if (sk_X509_num(chain) >= TDX_PCK_CHAIN_MAX_CERTS)
                        return cnos_err_set(e, -E2BIG, "pck-chain-format: offset %zu: more than %d certificates",
                                            chain_offset(q, p), TDX_PCK_CHAIN_MAX_CERTS);
                stop = memmem(p + strlen(begin_line), (size_t) (end - p) - strlen(begin_line), end_line, strlen(end_line));
                if (!stop)
                        return cnos_err_set(e, -EBADMSG, "pck-chain-format: certificate %d at offset %zu has no '%s' line",
                                            sk_X509_num(chain) + 1, chain_offset(q, p), end_line);
                /* OpenSSL's PEM reader skips some junk (a stray byte before the END line went
                 * unnoticed); accept only base64 lines between the BEGIN and END lines. */
                for (const uint8_t *b = p + strlen(begin_line); b < stop; b++)
                        if (!is_base64_line_byte(*b))
                                return cnos_err_set(e, -EBADMSG,
                                                    "pck-chain-format: certificate %d: byte 0x%02x at offset %zu is not base64",
                                                    sk_X509_num(chain) + 1, *b, chain_offset(q, b));
                if (stop[-1] != '\n' || (p[strlen(begin_line)] != '\n' && p[strlen(begin_line)] != '\r'))
                        return cnos_err_set(e, -EBADMSG, "pck-chain-format: certificate %d at offset %zu: BEGIN/END not on lines of their own",
                                            sk_X509_num(chain) + 1, chain_offset(q, p));
                block_end = stop + strlen(end_line);
                if (block_end < end && *block_end == '\r')
                        block_end++;
                if (block_end < end && *block_end == '\n')
                        block_end++;
                r = load_cert(p, (size_t) (block_end - p), &x);
                ERR_clear_error();
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return cnos_err_set(e, -EBADMSG, "pck-chain-format: certificate %d at offset %zu is not valid PEM/DER",
                                            sk_X509_num(chain) + 1, chain_offset(q, p));
                if (!sk_X509_push(chain, x))
                        return -ENOMEM;
                TAKE_PTR(x);
                p = block_end;
        }

        if (sk_X509_num(chain) < 2)
                return cnos_err_set(e, -EBADMSG, "pck-chain-format: %d certificate(s); need the PCK certificate and its CA",
                                    sk_X509_num(chain));
        *ret = TAKE_PTR(chain);
        return 0;
}

/* A name from an unverified certificate, made fit for a one-line message. */
static char *printable(char *s) {
        for (char *c = s; *c; c++)
                if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
                        *c = '?';
        return s;
}

static const char *cert_cn(X509 *x, char *buf, size_t n) {
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int) n) < 0)
                (void) snprintf(buf, n, "(no CN)");
        return printable(buf);
}

static const char *asn1_time_str(const ASN1_TIME *t, char *buf, size_t n) {
        struct tm tm;

        if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, n, "?");
        return buf;
}

static bool is_p256(EVP_PKEY *k) {
        char group[64];

        if (!k || !EVP_PKEY_is_a(k, "EC"))
                return false;
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1)
                return false;
        return strcmp(group, SN_X9_62_prime256v1) == 0;
}

static int verify_chain(STACK_OF(X509) *chain, X509 *root, time_t now, enum tdx_check *ret_check, struct cnos_err *e) {
        _cleanup_(x509_chain_freep) STACK_OF(X509) *untrusted = NULL;
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = NULL;
        X509 *leaf = sk_X509_value(chain, 0), *last = sk_X509_value(chain, sk_X509_num(chain) - 1), *bad;
        X509_VERIFY_PARAM *vp;
        char cn[128], ts[64];
        int n = sk_X509_num(chain), err, depth;

        /* An embedded root (a self-issued last certificate) must be intact and be the trusted
         * root: the chain is verified against the caller's root only, so a substituted embedded
         * root would otherwise go unnoticed. A byte-identical copy of the trusted root needs no
         * signature check (it is the caller's anchor); anything else is checked so that a damaged
         * root is reported as such rather than as merely untrusted. */
        if (X509_check_issued(last, last) == X509_V_OK && X509_cmp(last, root) == 0)
                n--;
        else if (X509_check_issued(last, last) == X509_V_OK) {
                EVP_PKEY *k = X509_get0_pubkey(last);

                if (!k || X509_verify(last, k) != 1) {
                        ERR_clear_error();
                        *ret_check = TDX_CHECK_ROOT_SIGNATURE;
                        return cnos_err_set(e, -EBADMSG, "root-signature: embedded root '%s' is not validly self-signed",
                                            cert_cn(last, cn, sizeof(cn)));
                }
                *ret_check = TDX_CHECK_ROOT_UNTRUSTED;
                return cnos_err_set(e, -EKEYREJECTED, "root-untrusted: embedded root '%s' is not the trusted root",
                                    cert_cn(last, cn, sizeof(cn)));
        }

        untrusted = sk_X509_new_null();
        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        if (!untrusted || !store || !ctx)
                return -ENOMEM;
        for (int i = 1; i < n; i++) {
                if (!X509_up_ref(sk_X509_value(chain, i)))
                        return -ENOMEM;
                if (!sk_X509_push(untrusted, sk_X509_value(chain, i))) {
                        X509_free(sk_X509_value(chain, i));
                        return -ENOMEM;
                }
        }
        if (X509_STORE_add_cert(store, root) != 1 || X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
                ERR_clear_error();
                return -ENOMEM;
        }
        /* Validity first and leaf first: OpenSSL would report the root's expiry before the PCK
         * leaf's, but the leaf is the certificate an operator can do something about. */
        for (int i = 0; i <= n; i++) {
                X509 *x = i < n ? sk_X509_value(chain, i) : root;

                if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
                        *ret_check = TDX_CHECK_CERT_EXPIRED;
                        return cnos_err_set(e, -EKEYEXPIRED, "cert-expired: '%s' expired %s", cert_cn(x, cn, sizeof(cn)),
                                            asn1_time_str(X509_get0_notAfter(x), ts, sizeof(ts)));
                }
                if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0) {
                        *ret_check = TDX_CHECK_CERT_NOT_YET_VALID;
                        return cnos_err_set(e, -EKEYEXPIRED, "cert-not-yet-valid: '%s' is valid from %s",
                                            cert_cn(x, cn, sizeof(cn)), asn1_time_str(X509_get0_notBefore(x), ts, sizeof(ts)));
                }
        }
        ERR_clear_error();

        vp = X509_STORE_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_time(vp, now);
        if (X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_USE_CHECK_TIME) != 1)
                return -ENOMEM;

        if (X509_verify_cert(ctx) == 1) {
                ERR_clear_error();
                /* Intel's hierarchy is exactly PCK -> PCK Platform/Processor CA -> Root CA. */
                if (sk_X509_num(X509_STORE_CTX_get0_chain(ctx)) != 3) {
                        *ret_check = TDX_CHECK_PCK_CHAIN;
                        return cnos_err_set(e, -EKEYREJECTED, "pck-chain: chain has %d certificates, want 3 (PCK, CA, root)",
                                            sk_X509_num(X509_STORE_CTX_get0_chain(ctx)));
                }
                if (!is_p256(X509_get0_pubkey(leaf))) {
                        *ret_check = TDX_CHECK_PCK_CHAIN;
                        return cnos_err_set(e, -EKEYREJECTED, "pck-chain: PCK certificate key is not ECDSA P-256");
                }
                return 0;
        }
        ERR_clear_error();

        err = X509_STORE_CTX_get_error(ctx);
        depth = X509_STORE_CTX_get_error_depth(ctx);
        bad = X509_STORE_CTX_get_current_cert(ctx);
        if (!bad)
                bad = depth >= 0 && depth < sk_X509_num(chain) ? sk_X509_value(chain, depth) : leaf;
        (void) cert_cn(bad, cn, sizeof(cn));

        switch (err) {
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
                *ret_check = depth == 0 ? TDX_CHECK_PCK_SIGNATURE : TDX_CHECK_INTERMEDIATE_SIGNATURE;
                return cnos_err_set(e, -EBADMSG, "%s: signature on '%s' (depth %d) does not verify",
                                    tdx_check_name(*ret_check), cn, depth);
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
                *ret_check = TDX_CHECK_CERT_EXPIRED;
                return cnos_err_set(e, -EKEYEXPIRED, "cert-expired: '%s' expired %s",
                                    cn, asn1_time_str(X509_get0_notAfter(bad), ts, sizeof(ts)));
        case X509_V_ERR_CERT_NOT_YET_VALID:
        case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
                *ret_check = TDX_CHECK_CERT_NOT_YET_VALID;
                return cnos_err_set(e, -EKEYEXPIRED, "cert-not-yet-valid: '%s' is valid from %s",
                                    cn, asn1_time_str(X509_get0_notBefore(bad), ts, sizeof(ts)));
        default:
                *ret_check = TDX_CHECK_PCK_CHAIN;
                return cnos_err_set(e, -EKEYREJECTED, "pck-chain: '%s' (depth %d): %s", cn, depth,
                                    X509_verify_cert_error_string(err));
        }
}

/* ---- PCK certificate SGX extension (Intel PCK Certificate and CRL Profile) ---------------- */

static int asn1_seq_parse(const ASN1_STRING *s, STACK_OF(ASN1_TYPE) **ret) {
        const unsigned char *p = ASN1_STRING_get0_data(s), *start = p;
        long len = ASN1_STRING_length(s);
        STACK_OF(ASN1_TYPE) *seq;

        seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
        if (!seq)
                return -EBADMSG;
        if (p != start + len) {
                sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
                return -EBADMSG;
        }
        *ret = seq;
        return 0;
}

/* Element i of the extension: SEQUENCE { OID, value }. Returns the OID's last arc relative to
 * `prefix` (e.g. 4 for prefix.4), or -EBADMSG. */
static int sgx_ext_entry(const ASN1_TYPE *t, const char *prefix, STACK_OF(ASN1_TYPE) **ret_pair, const ASN1_TYPE **ret_value) {
        _cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *pair = NULL;
        const ASN1_TYPE *oid;
        char buf[128], *end;
        size_t plen = strlen(prefix);
        unsigned long arc;

        if (ASN1_TYPE_get(t) != V_ASN1_SEQUENCE || asn1_seq_parse(t->value.sequence, &pair) < 0)
                return -EBADMSG;
        if (sk_ASN1_TYPE_num(pair) != 2)
                return -EBADMSG;
        oid = sk_ASN1_TYPE_value(pair, 0);
        if (ASN1_TYPE_get(oid) != V_ASN1_OBJECT)
                return -EBADMSG;
        if (OBJ_obj2txt(buf, sizeof(buf), oid->value.object, 1) <= 0 || strlen(buf) >= sizeof(buf) - 1)
                return -EBADMSG;
        if (strncmp(buf, prefix, plen) != 0 || buf[plen] != '.' || buf[plen + 1] < '0' || buf[plen + 1] > '9')
                return -ENOENT;
        errno = 0;
        arc = strtoul(buf + plen + 1, &end, 10);
        if (errno || *end || arc > 64)
                return -ENOENT;
        *ret_value = sk_ASN1_TYPE_value(pair, 1);
        *ret_pair = TAKE_PTR(pair);
        return (int) arc;
}

static int octets(const ASN1_TYPE *v, void *out, size_t n) {
        if (ASN1_TYPE_get(v) != V_ASN1_OCTET_STRING || (size_t) ASN1_STRING_length(v->value.octet_string) != n)
                return -EBADMSG;
        memcpy(out, ASN1_STRING_get0_data(v->value.octet_string), n);
        return 0;
}

static int small_int(const ASN1_TYPE *v, int type, long max, long *ret) {
        int64_t l;

        if (ASN1_TYPE_get(v) != type)
                return -EBADMSG;
        if (type == V_ASN1_INTEGER) {
                if (ASN1_INTEGER_get_int64(&l, v->value.integer) != 1)
                        return -EBADMSG;
        } else if (ASN1_ENUMERATED_get_int64(&l, v->value.enumerated) != 1)
                return -EBADMSG;
        if (l < 0 || l > max)
                return -EBADMSG;
        *ret = (long) l;
        return 0;
}

static int parse_sgx_tcb(const ASN1_TYPE *v, struct tdx_pck_info *info, unsigned *seen) {
        _cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *seq = NULL;

        if (ASN1_TYPE_get(v) != V_ASN1_SEQUENCE || asn1_seq_parse(v->value.sequence, &seq) < 0)
                return -EBADMSG;
        for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
                _cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *pair = NULL;
                const ASN1_TYPE *val;
                long l;
                int arc;

                arc = sgx_ext_entry(sk_ASN1_TYPE_value(seq, i), SGX_EXT_OID ".2", &pair, &val);
                if (arc == -ENOENT)
                        continue;
                if (arc < 0)
                        return arc;
                if (arc >= 1 && arc <= 16) {
                        if (small_int(val, V_ASN1_INTEGER, 255, &l) < 0)
                                return -EBADMSG;
                        info->tcb_comp_svn[arc - 1] = (uint8_t) l;
                        *seen |= 1U << arc;
                } else if (arc == 17) {
                        if (small_int(val, V_ASN1_INTEGER, 65535, &l) < 0)
                                return -EBADMSG;
                        info->pcesvn = (uint16_t) l;
                        *seen |= 1U << 17;
                } else if (arc == 18) {
                        if (octets(val, info->cpusvn, sizeof(info->cpusvn)) < 0)
                                return -EBADMSG;
                        *seen |= 1U << 18;
                }
        }
        return 0;
}

/* The leaf's SGX extension: everything in struct tdx_pck_info but the CA type. */
static int pck_sgx_extension(X509 *leaf, struct tdx_pck_info *ret, struct cnos_err *e) {
        _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = NULL;
        _cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *seq = NULL;
        struct tdx_pck_info info = {};
        unsigned seen = 0, tcb_seen = 0;
        X509_EXTENSION *ext;
        int idx;

        obj = OBJ_txt2obj(SGX_EXT_OID, 1);
        if (!obj)
                return -ENOMEM;
        idx = X509_get_ext_by_OBJ(leaf, obj, -1);
        if (idx < 0)
                return cnos_err_set(e, -EKEYREJECTED, "pck-extension: PCK certificate has no SGX extension (%s)", SGX_EXT_OID);
        if (X509_get_ext_by_OBJ(leaf, obj, idx) >= 0)
                return cnos_err_set(e, -EKEYREJECTED, "pck-extension: PCK certificate has two SGX extensions");
        ext = X509_get_ext(leaf, idx);
        if (asn1_seq_parse(X509_EXTENSION_get_data(ext), &seq) < 0) {
                ERR_clear_error();
                return cnos_err_set(e, -EKEYREJECTED, "pck-extension: SGX extension is not a DER SEQUENCE");
        }

        for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
                _cleanup_(asn1_seq_freep) STACK_OF(ASN1_TYPE) *pair = NULL;
                const ASN1_TYPE *val;
                long l;
                int arc, r = 0;

                arc = sgx_ext_entry(sk_ASN1_TYPE_value(seq, i), SGX_EXT_OID, &pair, &val);
                if (arc == -ENOENT)
                        continue; /* unknown entries (platform instance ID, configuration) */
                if (arc < 0) {
                        ERR_clear_error();
                        return cnos_err_set(e, -EKEYREJECTED, "pck-extension: SGX extension entry %d is malformed", i);
                }
                if (arc >= 1 && arc <= 5 && (seen & (1U << arc)))
                        return cnos_err_set(e, -EKEYREJECTED, "pck-extension: %s.%d appears twice", SGX_EXT_OID, arc);
                switch (arc) {
                case 1:
                        r = octets(val, info.ppid, sizeof(info.ppid));
                        break;
                case 2:
                        r = parse_sgx_tcb(val, &info, &tcb_seen);
                        break;
                case 3:
                        r = octets(val, info.pceid, sizeof(info.pceid));
                        break;
                case 4:
                        r = octets(val, info.fmspc, sizeof(info.fmspc));
                        break;
                case 5:
                        r = small_int(val, V_ASN1_ENUMERATED, 255, &l);
                        if (r >= 0)
                                info.sgx_type = (int) l;
                        break;
                default:
                        continue;
                }
                if (r < 0) {
                        ERR_clear_error();
                        return cnos_err_set(e, -EKEYREJECTED, "pck-extension: %s.%d is malformed", SGX_EXT_OID, arc);
                }
                seen |= 1U << arc;
        }
        for (int arc = 1; arc <= 5; arc++)
                if (!(seen & (1U << arc)))
                        return cnos_err_set(e, -EKEYREJECTED, "pck-extension: %s.%d (%s) is missing", SGX_EXT_OID, arc,
                                            (const char *[]) { "", "PPID", "TCB", "PCE-ID", "FMSPC", "SGX type" }[arc]);
        if ((tcb_seen & 0x7fffeU) != 0x7fffeU)
                return cnos_err_set(e, -EKEYREJECTED, "pck-extension: %s.2 (TCB) lacks component SVNs, PCESVN or CPUSVN",
                                    SGX_EXT_OID);
        *ret = info;
        return 0;
}

static int pck_info_from_cert(X509 *leaf, X509 *issuer, struct tdx_pck_info *ret, struct cnos_err *e) {
        struct tdx_pck_info info = {};
        enum tdx_pck_ca ca;
        char cn[128];
        int r;

        /* The CA type comes from the issuer's name, as Intel PCS names its two PCK CAs. */
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(issuer), NID_commonName, cn, sizeof(cn)) < 0)
                cn[0] = 0;
        if (streq(cn, "Intel SGX PCK Platform CA"))
                ca = TDX_PCK_CA_PLATFORM;
        else if (streq(cn, "Intel SGX PCK Processor CA"))
                ca = TDX_PCK_CA_PROCESSOR;
        else
                return cnos_err_set(e, -EKEYREJECTED, "pck-extension: PCK issuer '%s' is neither the PCK Platform nor the PCK Processor CA",
                                    printable(cn));

        /* The extension is a function of the leaf's bytes alone: read once per cached leaf. */
        if (!cert_cache_get_sgx(leaf, &info)) {
                r = pck_sgx_extension(leaf, &info, e);
                if (r < 0)
                        return r;
                cert_cache_put_sgx(leaf, &info);
        }
        info.ca = ca;
        *ret = info;
        return 0;
}

int tdx_quote_pck_info(const struct tdx_quote *q, struct tdx_pck_info *ret, struct cnos_err *e) {
        _cleanup_(x509_chain_freep) STACK_OF(X509) *chain = NULL;
        int r;

        r = load_pck_chain(q, &chain, e);
        if (r < 0)
                return r;
        return pck_info_from_cert(sk_X509_value(chain, 0), sk_X509_value(chain, 1), ret, e);
}

/* ---- signatures --------------------------------------------------------------------------- */

static int p256_key_from_xy(const uint8_t xy[TDX_ECDSA_KEY_SIZE], EVP_PKEY **ret) {
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL, *check = NULL;
        uint8_t point[1 + TDX_ECDSA_KEY_SIZE];
        char group[] = SN_X9_62_prime256v1;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
                OSSL_PARAM_construct_end(),
        };
        EVP_PKEY *k = NULL;

        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, xy, TDX_ECDSA_KEY_SIZE);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!ctx)
                return -ENOMEM;
        if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1) {
                ERR_clear_error();
                return -EBADMSG;
        }
        check = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
        /* The quick check (point on the curve, not at infinity) is complete for P-256, whose
         * cofactor is 1; the full check would add a scalar multiplication per quote. */
        if (!check || EVP_PKEY_public_check_quick(check) != 1) {
                ERR_clear_error();
                EVP_PKEY_free(k);
                return check ? -EBADMSG : -ENOMEM;
        }
        *ret = k;
        return 0;
}

/* p256_key_from_xy() through the cache: a platform's quoting enclave signs every quote with the
 * same attestation key until it is renewed. */
static int attestation_key(const uint8_t xy[TDX_ECDSA_KEY_SIZE], EVP_PKEY **ret) {
        EVP_PKEY *k;
        int r;

        k = cache_get(&att_key_cache, xy, TDX_ECDSA_KEY_SIZE, NULL, NULL);
        if (k) {
                *ret = k;
                return 0;
        }
        r = p256_key_from_xy(xy, &k);
        if (r < 0)
                return r;
        cache_put(&att_key_cache, xy, TDX_ECDSA_KEY_SIZE, k, NULL);
        *ret = k;
        return 0;
}

/* 1: valid, 0: invalid, <0: errno. */
static int ecdsa_verify_raw(EVP_PKEY *key, const uint8_t sig[TDX_ECDSA_SIG_SIZE], const void *msg, size_t len) {
        _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *s = NULL;
        _cleanup_(BN_freep) BIGNUM *r = NULL, *sv = NULL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = NULL;
        _cleanup_(openssl_freep) unsigned char *der = NULL;
        int derlen, ok;

        s = ECDSA_SIG_new();
        r = BN_bin2bn(sig, 32, NULL);
        sv = BN_bin2bn(sig + 32, 32, NULL);
        md = EVP_MD_CTX_new();
        if (!s || !r || !sv || !md)
                return -ENOMEM;
        if (ECDSA_SIG_set0(s, r, sv) != 1)
                return -ENOMEM;
        r = sv = NULL; /* owned by s now */
        derlen = i2d_ECDSA_SIG(s, &der);
        if (derlen <= 0)
                return -ENOMEM;
        if (!cnos_hash_md(CNOS_HASH_SHA256))
                return -ENOMEM;
        /* The digest fetched once per process: EVP_sha256() would fetch it again on every call. */
        if (EVP_DigestVerifyInit(md, NULL, cnos_hash_md(CNOS_HASH_SHA256), NULL, key) != 1) {
                ERR_clear_error();
                return 0;
        }
        ok = EVP_DigestVerify(md, der, (size_t) derlen, msg, len);
        ERR_clear_error();
        return ok == 1;
}

/* ---- verification ------------------------------------------------------------------------- */

static const char *const check_names[_TDX_CHECK_MAX] = {
        [TDX_CHECK_NONE] = "none",
        [TDX_CHECK_PCK_CHAIN_FORMAT] = "pck-chain-format",
        [TDX_CHECK_ROOT_SIGNATURE] = "root-signature",
        [TDX_CHECK_ROOT_UNTRUSTED] = "root-untrusted",
        [TDX_CHECK_INTERMEDIATE_SIGNATURE] = "intermediate-signature",
        [TDX_CHECK_PCK_SIGNATURE] = "pck-signature",
        [TDX_CHECK_CERT_EXPIRED] = "cert-expired",
        [TDX_CHECK_CERT_NOT_YET_VALID] = "cert-not-yet-valid",
        [TDX_CHECK_PCK_CHAIN] = "pck-chain",
        [TDX_CHECK_PCK_EXTENSION] = "pck-extension",
        [TDX_CHECK_QE_REPORT_SIGNATURE] = "qe-report-signature",
        [TDX_CHECK_QE_REPORT_DATA] = "qe-report-data",
        [TDX_CHECK_ATTESTATION_KEY] = "attestation-key",
        [TDX_CHECK_QUOTE_SIGNATURE] = "quote-signature",
        [TDX_CHECK_DEBUG] = "debug-td",
        [TDX_CHECK_REPORT_DATA] = "report-data",
        [TDX_CHECK_MRTD] = "mrtd",
        [TDX_CHECK_RTMR] = "rtmr",
};

const char *tdx_check_name(enum tdx_check c) {
        return (int) c >= 0 && c < _TDX_CHECK_MAX ? check_names[c] : NULL;
}

static int verify_internal(const struct tdx_quote *q, const struct tdx_policy *p, struct tdx_pck_info *ret_pck,
                           enum tdx_check *check, struct cnos_err *e) {
        _cleanup_(x509_chain_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *att_key = NULL;
        struct tdx_pck_info info;
        uint8_t h[32];
        char want[2 * TDX_MR_SIZE + 1], got[2 * TDX_MR_SIZE + 1];
        int r;

        if (!q || !p || !p->root)
                return cnos_err_set(e, -EINVAL, "tdx verify: no quote or no trusted root");
        if (!q->signed_data || !q->pck_chain || !q->qe_report_raw || (!q->qe_auth_data && q->qe_auth_data_size))
                return cnos_err_set(e, -EINVAL, "tdx verify: quote was not parsed");

        *check = TDX_CHECK_PCK_CHAIN_FORMAT;
        r = load_pck_chain(q, &chain, e);
        if (r < 0)
                return r == -ENOMEM ? r : -EKEYREJECTED;

        r = verify_chain(chain, p->root, p->now, check, e);
        if (r < 0)
                return r;

        *check = TDX_CHECK_PCK_EXTENSION;
        r = pck_info_from_cert(sk_X509_value(chain, 0), sk_X509_value(chain, 1), &info, e);
        if (r < 0)
                return r;

        *check = TDX_CHECK_QE_REPORT_SIGNATURE;
        r = ecdsa_verify_raw(X509_get0_pubkey(sk_X509_value(chain, 0)), q->qe_report_signature, q->qe_report_raw,
                             TDX_QE_REPORT_SIZE);
        if (r < 0)
                return r;
        if (r == 0)
                return cnos_err_set(e, -EBADMSG, "qe-report-signature: QE report signature does not verify with the PCK key");

        /* The QE vouches for the attestation key by putting SHA-256(key || QE auth data) into the
         * first half of its REPORTDATA; the second half is zero. */
        *check = TDX_CHECK_QE_REPORT_DATA;
        {
                _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
                static const uint8_t zero[32] = {};

                if (!md)
                        return -ENOMEM;
                if (EVP_DigestInit_ex(md, cnos_hash_md(CNOS_HASH_SHA256), NULL) != 1 ||
                    EVP_DigestUpdate(md, q->attestation_key, sizeof(q->attestation_key)) != 1 ||
                    EVP_DigestUpdate(md, q->qe_auth_data, q->qe_auth_data_size) != 1 ||
                    EVP_DigestFinal_ex(md, h, NULL) != 1)
                        return -EIO;
                if (!ct_memeq(h, q->qe_report.report_data, 32))
                        return cnos_err_set(e, -EBADMSG,
                                            "qe-report-data: QE REPORTDATA[0..31] is not SHA-256(attestation key || QE auth data)");
                if (!ct_memeq(zero, q->qe_report.report_data + 32, 32))
                        return cnos_err_set(e, -EBADMSG, "qe-report-data: QE REPORTDATA[32..63] is not zero");
        }

        *check = TDX_CHECK_ATTESTATION_KEY;
        r = attestation_key(q->attestation_key, &att_key);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return cnos_err_set(e, -EBADMSG, "attestation-key: not a valid P-256 public key");

        *check = TDX_CHECK_QUOTE_SIGNATURE;
        r = ecdsa_verify_raw(att_key, q->signature, q->signed_data, q->signed_size);
        if (r < 0)
                return r;
        if (r == 0)
                return cnos_err_set(e, -EBADMSG, "quote-signature: quote signature over header and body (%zu bytes) does not verify",
                                    q->signed_size);

        /* Everything below is signed; now it is policy. */
        *check = TDX_CHECK_DEBUG;
        if (tdx_quote_is_debug(q))
                return cnos_err_set(e, -EPERM, "debug-td: TDATTRIBUTES.DEBUG is set: the host can read this TD");

        *check = TDX_CHECK_REPORT_DATA;
        if (p->report_data && !ct_memeq(p->report_data, q->body.report_data, TDX_REPORT_DATA_SIZE))
                return cnos_err_set(e, -EPERM, "report-data: REPORTDATA differs from the expected value");

        *check = TDX_CHECK_MRTD;
        if (p->mr_td && !ct_memeq(p->mr_td, q->body.mr_td, TDX_MR_SIZE))
                return cnos_err_set(e, -EPERM, "mrtd: MRTD is %s, expected %s", hex_encode(q->body.mr_td, TDX_MR_SIZE, got),
                                    hex_encode(p->mr_td, TDX_MR_SIZE, want));

        *check = TDX_CHECK_RTMR;
        for (size_t i = 0; i < TDX_RTMR_COUNT; i++)
                if (p->rtmr[i] && !ct_memeq(p->rtmr[i], q->body.rtmr[i], TDX_MR_SIZE))
                        return cnos_err_set(e, -EPERM, "rtmr: RTMR%zu is %s, expected %s", i,
                                            hex_encode(q->body.rtmr[i], TDX_MR_SIZE, got),
                                            hex_encode(p->rtmr[i], TDX_MR_SIZE, want));

        *check = TDX_CHECK_NONE;
        if (ret_pck)
                *ret_pck = info;
        return 0;
}

int tdx_quote_verify(const struct tdx_quote *q, const struct tdx_policy *p, struct tdx_pck_info *ret_pck,
                     enum tdx_check *ret_failed, struct cnos_err *e) {
        enum tdx_check check = TDX_CHECK_NONE;
        int r;

        r = verify_internal(q, p, ret_pck, &check, e);
        if (r < 0 && check == TDX_CHECK_NONE)
                check = TDX_CHECK_PCK_CHAIN; /* not reached: every failure names its check */
        if (ret_failed)
                *ret_failed = r < 0 ? check : TDX_CHECK_NONE;
        return r;
}

/* ---- output ------------------------------------------------------------------------------- */

int tdx_quote_json(const struct tdx_quote *q, const struct tdx_pck_info *pck, char **ret) {
        char mrtd[2 * TDX_MR_SIZE + 1], rtmr[TDX_RTMR_COUNT][2 * TDX_MR_SIZE + 1], rd[2 * TDX_REPORT_DATA_SIZE + 1],
                fmspc[2 * TDX_FMSPC_SIZE + 1];
        char *s;

        if (!q || !pck || !ret)
                return -EINVAL;
        for (size_t i = 0; i < TDX_RTMR_COUNT; i++)
                hex_encode(q->body.rtmr[i], TDX_MR_SIZE, rtmr[i]);
        if (asprintf(&s,
                     "{\"ok\": true, \"tee\": \"tdx\", \"version\": %u, \"mrtd\": \"%s\", "
                     "\"rtmrs\": [\"%s\", \"%s\", \"%s\", \"%s\"], \"report_data\": \"%s\", \"fmspc\": \"%s\"}",
                     q->version, hex_encode(q->body.mr_td, TDX_MR_SIZE, mrtd), rtmr[0], rtmr[1], rtmr[2], rtmr[3],
                     hex_encode(q->body.report_data, TDX_REPORT_DATA_SIZE, rd),
                     hex_encode(pck->fmspc, TDX_FMSPC_SIZE, fmspc)) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- collection through configfs-tsm ------------------------------------------------------ */

static int read_attr(const char *dir, const char *name, char *buf, size_t n) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;
        int r;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        r = read_file(path, n - 1, &data, &size);
        if (r < 0)
                return r;
        while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == 0))
                size--;
        memcpy(buf, data, size);
        buf[size] = 0;
        return 0;
}

int tdx_get_quote(const uint8_t report_data[TDX_REPORT_DATA_SIZE], const char *tsm_dir, uint8_t **ret,
                  size_t *ret_size, struct cnos_err *e) {
        static atomic_uint counter;
        _cleanup_(rmdir_freep) char *entry = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ uint8_t *quote = NULL;
        _cleanup_close_ int fd = -EBADF;
        char provider[64], gen1[32], gen2[32];
        struct tdx_quote q;
        struct stat st;
        size_t size;
        ssize_t n;
        int r;

        if (!report_data || !ret || !ret_size)
                return cnos_err_set(e, -EINVAL, "tdx: invalid arguments");
        if (!tsm_dir)
                tsm_dir = TDX_TSM_REPORT_PATH;

        if (stat(tsm_dir, &st) < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return cnos_err_set(e, -ENODEV, "no TDX device (configfs-tsm absent): %s does not exist", tsm_dir);
                r = negative_errno();
                return cnos_err_set(e, r, "cannot access %s: %s", tsm_dir, strerror(-r));
        }
        if (!S_ISDIR(st.st_mode))
                return cnos_err_set(e, -ENODEV, "no TDX device (configfs-tsm absent): %s is not a directory", tsm_dir);

        for (int attempt = 0;; attempt++) {
                char *p;

                if (asprintf(&p, "%s/cnos-%d-%u", tsm_dir, (int) getpid(), atomic_fetch_add(&counter, 1)) < 0)
                        return -ENOMEM;
                if (mkdir(p, 0700) == 0) {
                        entry = p;
                        break;
                }
                r = negative_errno();
                free(p);
                if (r != -EEXIST || attempt >= 16)
                        return cnos_err_set(e, r, "tdx: cannot create a report entry in %s: %s", tsm_dir, strerror(-r));
        }

        if (asprintf(&path, "%s/inblob", entry) < 0)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = negative_errno();
                if (r == -ENOENT)
                        return cnos_err_set(e, -ENODEV, "no TDX device (configfs-tsm absent): %s has no inblob", entry);
                return cnos_err_set(e, r, "tdx: open %s: %s", path, strerror(-r));
        }
        n = write(fd, report_data, TDX_REPORT_DATA_SIZE);
        if (n != TDX_REPORT_DATA_SIZE) {
                r = n < 0 ? negative_errno() : -EIO;
                return cnos_err_set(e, r, "tdx: write %s: %s", path, strerror(-r));
        }
        fd = TAKE_FD(fd);
        if (close(fd) < 0) {
                r = negative_errno();
                return cnos_err_set(e, r, "tdx: write %s: %s", path, strerror(-r));
        }

        r = read_attr(entry, "provider", provider, sizeof(provider));
        if (r < 0)
                return cnos_err_set(e, r, "tdx: read %s/provider: %s", entry, strerror(-r));
        if (!streq(provider, "tdx_guest"))
                return cnos_err_set(e, -ENODEV, "no TDX device: configfs-tsm provider is '%s', not tdx_guest", provider);

        r = read_attr(entry, "generation", gen1, sizeof(gen1));
        if (r < 0)
                return cnos_err_set(e, r, "tdx: read %s/generation: %s", entry, strerror(-r));
        free(path);
        if (asprintf(&path, "%s/outblob", entry) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        r = read_file(path, TDX_QUOTE_MAX_SIZE, &quote, &size);
        if (r < 0)
                return cnos_err_set(e, r, "tdx: read %s: %s", path, strerror(-r));
        r = read_attr(entry, "generation", gen2, sizeof(gen2));
        if (r < 0)
                return cnos_err_set(e, r, "tdx: read %s/generation: %s", entry, strerror(-r));
        /* Someone else wrote to our entry between inblob and outblob: the quote may be theirs. */
        if (!streq(gen1, gen2))
                return cnos_err_set(e, -EBUSY, "tdx: %s changed while the quote was generated (generation %s -> %s)",
                                    entry, gen1, gen2);

        r = tdx_quote_parse(quote, size, &q, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "tdx: quote from %s: ", path);
        if (!ct_memeq(q.body.report_data, report_data, TDX_REPORT_DATA_SIZE))
                return cnos_err_set(e, -EBADMSG, "tdx: quote from %s does not carry the requested REPORTDATA", path);

        *ret = TAKE_PTR(quote);
        *ret_size = size;
        return 0;
}
