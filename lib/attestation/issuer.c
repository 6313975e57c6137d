/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include "atls/atls.h"
#include "attestation/ccel.h"
#include "attestation/issuer.h"
#include "attestation/snp.h"
#include "attestation/tdx.h"
#include "attestation/tpm2.h"
#include "fileio.h"
#include "protocol/protocol.h"
#include "secure.h"

/* One implementation per TEE. `open` prepares the TEE (and fails with -ENODEV if it is absent),
 * `collect` fills the TEE's member of an Evidence, `activate` and `bind_cluster` may be NULL when the
 * TEE has no such operation, `close` releases what `open` took. */
struct issuer_ops {
        Cnos__Join__Tee tee;
        int (*open)(struct issuer *i, const struct issuer_config *c, struct cnos_err *e);
        int (*collect)(struct issuer *i, const uint8_t binding[static ISSUER_BINDING_SIZE], Cnos__Join__Evidence *ev,
                       struct cnos_err *e);
        int (*activate)(struct issuer *i, const Cnos__Join__CredentialChallenge *c, uint8_t *ret_secret, size_t *ret_size,
                        struct cnos_err *e);
        int (*bind_cluster)(struct issuer *i, const uint8_t digest[static TPM2_SHA256_SIZE], struct cnos_err *e);
        void (*close)(struct issuer *i);
};

struct issuer {
        const struct issuer_ops *ops;
        char *eventlog_path; /* NULL: send none */
        char *tsm_path;
        char *sev_guest_path;

        /* TPM */
        struct tpm2 *tpm;
        uint8_t *ek_cert;
        size_t ek_cert_size;
        enum tpm2_ek_type ek_type;
        struct tpm2_public ak;
};

/* ---- helpers -------------------------------------------------------------------------------------- */

static int bytes_dup(ProtobufCBinaryData *b, const void *data, size_t size) {
        if (size == 0) {
                *b = (ProtobufCBinaryData) {};
                return 0;
        }
        b->data = malloc(size);
        if (!b->data)
                return -ENOMEM;
        memcpy(b->data, data, size);
        b->len = size;
        return 0;
}

static void bytes_take(ProtobufCBinaryData *b, uint8_t **data, size_t size) {
        if (size == 0) {
                free(*data);
                *data = NULL;
                *b = (ProtobufCBinaryData) {};
                return;
        }
        b->data = TAKE_PTR(*data);
        b->len = size;
}

static char *path_join(const char *dir, const char *name) {
        char *p;

        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static bool path_exists(const char *path) {
        struct stat st;

        return stat(path, &st) == 0;
}

/* The firmware log at i->eventlog_path: none if not configured or not there. */
static int eventlog_load(struct issuer *i, uint8_t **ret, size_t *ret_size, struct cnos_err *e) {
        int r;

        *ret = NULL;
        *ret_size = 0;
        if (!i->eventlog_path)
                return 0;
        r = read_file(i->eventlog_path, TPM2_EVENTLOG_MAX, ret, ret_size);
        if (r == -ENOENT || r == -ENOTDIR)
                return 0;
        if (r == -EFBIG)
                return cnos_err_set(e, r, "event log %s is larger than %u bytes", i->eventlog_path, TPM2_EVENTLOG_MAX);
        if (r < 0)
                return cnos_err_set(e, r, "reading event log %s: %s", i->eventlog_path, strerror(-r));
        return 0;
}

static int evidence_cap(const char *what, size_t size, struct cnos_err *e) {
        if (size > CNOS_EVIDENCE_MAX)
                return cnos_err_set(e, -E2BIG, "%s of %zu bytes is larger than the join protocol carries (%u)", what, size,
                                    CNOS_EVIDENCE_MAX);
        return 0;
}

/* ---- TPM 2.0 ---------------------------------------------------------------------------------------- */

static const enum tpm2_ek_type ek_order[] = { TPM2_EK_RSA2048, TPM2_EK_ECC_P256, TPM2_EK_ECC_P384 };

static int tpm_open(struct issuer *i, const struct issuer_config *c, struct cnos_err *e) {
        struct tpm2_public ek;
        int r;

        r = tpm2_open(c->tcti, &i->tpm, e);
        if (r < 0)
                return r;

        r = -ENOENT;
        for (size_t k = 0; k < ELEMENTSOF(ek_order); k++) {
                r = tpm2_ek_cert_read(i->tpm, ek_order[k], &i->ek_cert, &i->ek_cert_size, e);
                if (r == -ENOENT) {
                        cnos_err_clear(e); /* the next type may be there */
                        continue;
                }
                if (r < 0)
                        return cnos_err_prefix(e, r, "EK certificate (%s): ", tpm2_ek_type_name(ek_order[k]));
                i->ek_type = ek_order[k];
                break;
        }
        if (r == -ENOENT)
                return cnos_err_set(e, -ENOENT, "the TPM holds no EK certificate (NV 0x%08x, 0x%08x, 0x%08x)",
                                    tpm2_ek_cert_nv_index(TPM2_EK_RSA2048), tpm2_ek_cert_nv_index(TPM2_EK_ECC_P256),
                                    tpm2_ek_cert_nv_index(TPM2_EK_ECC_P384));

        r = tpm2_ek_create(i->tpm, i->ek_type, i->ek_cert, i->ek_cert_size, &ek, e);
        if (r < 0)
                return r;
        /* ECC P-256: the AK is recreated for every run, and an ECC primary is several times cheaper
         * to create than an RSA one. */
        return tpm2_ak_create(i->tpm, TPM2_AK_ECC_P256, &i->ak, e);
}

static int tpm_collect(struct issuer *i, const uint8_t binding[static ISSUER_BINDING_SIZE], Cnos__Join__Evidence *ev,
                       struct cnos_err *e) {
        _cleanup_free_ struct tpm2_quote *q = NULL;
        _cleanup_free_ uint8_t *log = NULL;
        Cnos__Join__TpmEvidence *t;
        uint8_t nonce[TPM2_SHA256_SIZE];
        size_t log_size;
        int r;

        atls_tpm_nonce(binding, nonce);

        q = malloc(sizeof(*q));
        if (!q)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        r = tpm2_quote(i->tpm, nonce, sizeof(nonce), q, e);
        if (r < 0)
                return r;

        r = eventlog_load(i, &log, &log_size, e);
        if (r < 0)
                return r;
        r = evidence_cap("the TPM event log", log_size, e);
        if (r < 0)
                return r;

        t = malloc(sizeof(*t));
        if (!t)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        cnos__join__tpm_evidence__init(t);
        ev->tpm = t; /* owned by ev from here on: issuer_evidence_free() releases what is set */

        t->pcrs_sha256 = calloc(TPM2_QUOTE_PCRS, sizeof(ProtobufCBinaryData));
        if (!t->pcrs_sha256)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        t->n_pcrs_sha256 = TPM2_QUOTE_PCRS;
        for (size_t k = 0; k < TPM2_QUOTE_PCRS; k++)
                if (bytes_dup(&t->pcrs_sha256[k], q->pcrs[k], TPM2_SHA256_SIZE) < 0)
                        return cnos_err_set(e, -ENOMEM, "out of memory");

        if (bytes_dup(&t->ak_public, i->ak.public, i->ak.public_size) < 0 ||
            bytes_dup(&t->quote_attest, q->attest, q->attest_size) < 0 ||
            bytes_dup(&t->quote_signature, q->signature, q->signature_size) < 0 ||
            bytes_dup(&t->ek_certificate, i->ek_cert, i->ek_cert_size) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        bytes_take(&t->eventlog, &log, log_size);
        return 0;
}

static int tpm_activate(struct issuer *i, const Cnos__Join__CredentialChallenge *c, uint8_t *ret_secret, size_t *ret_size,
                        struct cnos_err *e) {
        return tpm2_activate_credential(i->tpm, c->id_object.data, c->id_object.len, c->encrypted_secret.data,
                                        c->encrypted_secret.len, ret_secret, ret_size, e);
}

static int tpm_bind_cluster(struct issuer *i, const uint8_t digest[static TPM2_SHA256_SIZE], struct cnos_err *e) {
        return tpm2_pcr_extend(i->tpm, ISSUER_CLUSTER_PCR, digest, e);
}

static void tpm_close(struct issuer *i) {
        tpm2_close(TAKE_PTR(i->tpm));
        free(TAKE_PTR(i->ek_cert));
}

/* ---- AMD SEV-SNP ------------------------------------------------------------------------------------ */

static int snp_open(struct issuer *i, const struct issuer_config *c, struct cnos_err *e) {
        /* The report itself is only asked for with a binding; here only whether an interface is there
         * at all, so a machine without SNP fails before anything is sent. */
        if (!path_exists(i->tsm_path) && !path_exists(i->sev_guest_path))
                return cnos_err_set(e, -ENODEV, "snp: no SEV-SNP device (neither configfs-tsm %s nor %s exists)", i->tsm_path,
                                    i->sev_guest_path);
        return 0;
}

/* The certificate of `kind` from the host's table as PEM appended to `bio`. */
static int pem_append(BIO *bio, const uint8_t *table, size_t table_size, enum snp_cert_kind kind, struct cnos_err *e) {
        const uint8_t *der;
        size_t der_size;
        int r;

        r = snp_cert_table_find(table, table_size, kind, &der, &der_size, e);
        if (r == -ENOENT) {
                cnos_err_clear(e);
                return 0;
        }
        if (r < 0)
                return r;
        if (der_size > LONG_MAX || PEM_write_bio(bio, "CERTIFICATE", "", der, (long) der_size) <= 0)
                return cnos_err_set(e, -ENOMEM, "snp: PEM encoding a certificate failed");
        return 0;
}

static int snp_collect(struct issuer *i, const uint8_t binding[static ISSUER_BINDING_SIZE], Cnos__Join__Evidence *ev,
                       struct cnos_err *e) {
        const struct snp_device_paths paths = { .tsm_report = i->tsm_path, .sev_guest = i->sev_guest_path };
        _cleanup_free_ uint8_t *report = NULL, *certs = NULL;
        size_t report_size = 0, certs_size = 0;
        Cnos__Join__SnpEvidence *s;
        int r;

        r = snp_get_report_at(&paths, binding, &report, &report_size, &certs, &certs_size, e);
        if (r < 0)
                return r;

        s = malloc(sizeof(*s));
        if (!s)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        cnos__join__snp_evidence__init(s);
        ev->snp = s;
        bytes_take(&s->report, &report, report_size);

        if (certs && certs_size > 0) {
                BIO *bio;
                const uint8_t *vek;
                size_t vek_size;
                char *pem;
                long pem_size;

                r = snp_cert_table_find(certs, certs_size, SNP_CERT_VCEK, &vek, &vek_size, e);
                if (r == -ENOENT) {
                        cnos_err_clear(e);
                        r = snp_cert_table_find(certs, certs_size, SNP_CERT_VLEK, &vek, &vek_size, e);
                }
                if (r == 0) {
                        r = evidence_cap("the VCEK", vek_size, e);
                        if (r < 0)
                                return r;
                        if (bytes_dup(&s->vcek, vek, vek_size) < 0)
                                return cnos_err_set(e, -ENOMEM, "out of memory");
                } else if (r != -ENOENT)
                        return r;
                cnos_err_clear(e);

                bio = BIO_new(BIO_s_mem());
                if (!bio)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                r = pem_append(bio, certs, certs_size, SNP_CERT_ASK, e);
                if (r >= 0)
                        r = pem_append(bio, certs, certs_size, SNP_CERT_ARK, e);
                pem_size = BIO_get_mem_data(bio, &pem);
                if (r >= 0 && pem_size > 0) {
                        r = evidence_cap("the AMD certificate chain", (size_t) pem_size, e);
                        if (r >= 0 && bytes_dup(&s->chain, pem, (size_t) pem_size) < 0)
                                r = cnos_err_set(e, -ENOMEM, "out of memory");
                }
                BIO_free(bio);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- Intel TDX ------------------------------------------------------------------------------------- */

static int tdx_open(struct issuer *i, const struct issuer_config *c, struct cnos_err *e) {
        if (!path_exists(i->tsm_path))
                return cnos_err_set(e, -ENODEV, "tdx: no TDX device (configfs-tsm %s does not exist)", i->tsm_path);
        return 0;
}

static int tdx_collect(struct issuer *i, const uint8_t binding[static ISSUER_BINDING_SIZE], Cnos__Join__Evidence *ev,
                       struct cnos_err *e) {
        _cleanup_free_ uint8_t *quote = NULL, *log = NULL;
        size_t quote_size = 0, log_size = 0;
        Cnos__Join__TdxEvidence *t;
        int r;

        r = tdx_get_quote(binding, i->tsm_path, &quote, &quote_size, e);
        if (r < 0)
                return r;
        r = evidence_cap("the TDX quote", quote_size, e);
        if (r < 0)
                return r;

        r = eventlog_load(i, &log, &log_size, e);
        if (r < 0)
                return r;
        if (log_size > 0) {
                /* The firmware reserves a fixed log area and pads it; only the events travel. */
                r = ccel_log_size(log, log_size, &log_size, e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "CCEL %s: ", i->eventlog_path);
                r = evidence_cap("the CCEL event log", log_size, e);
                if (r < 0)
                        return r;
        }

        t = malloc(sizeof(*t));
        if (!t)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        cnos__join__tdx_evidence__init(t);
        ev->tdx = t;
        bytes_take(&t->quote, &quote, quote_size);
        bytes_take(&t->ccel, &log, log_size);
        return 0;
}

/* ---- the table, and the one place that chooses from it -------------------------------------------- */

static const struct issuer_ops issuer_ops_tpm2 = {
        .tee = CNOS__JOIN__TEE__TEE_TPM2,
        .open = tpm_open,
        .collect = tpm_collect,
        .activate = tpm_activate,
        .bind_cluster = tpm_bind_cluster,
        .close = tpm_close,
};

static const struct issuer_ops issuer_ops_snp = {
        .tee = CNOS__JOIN__TEE__TEE_SEV_SNP,
        .open = snp_open,
        .collect = snp_collect,
};

static const struct issuer_ops issuer_ops_tdx = {
        .tee = CNOS__JOIN__TEE__TEE_TDX,
        .open = tdx_open,
        .collect = tdx_collect,
};

static const struct issuer_ops *ops_for(Cnos__Join__Tee tee) {
        switch (tee) {
        case CNOS__JOIN__TEE__TEE_TPM2:
                return &issuer_ops_tpm2;
        case CNOS__JOIN__TEE__TEE_SEV_SNP:
                return &issuer_ops_snp;
        case CNOS__JOIN__TEE__TEE_TDX:
                return &issuer_ops_tdx;
        default:
                return NULL;
        }
}

const char *issuer_tee_to_string(Cnos__Join__Tee tee) {
        switch (tee) {
        case CNOS__JOIN__TEE__TEE_UNSPECIFIED:
                return "unspecified";
        case CNOS__JOIN__TEE__TEE_TPM2:
                return "tpm2";
        case CNOS__JOIN__TEE__TEE_SEV_SNP:
                return "sev-snp";
        case CNOS__JOIN__TEE__TEE_TDX:
                return "tdx";
        default:
                return NULL;
        }
}

int issuer_tee_from_string(const char *s, Cnos__Join__Tee *ret) {
        static const struct {
                const char *name;
                Cnos__Join__Tee tee;
        } names[] = {
                { "auto", CNOS__JOIN__TEE__TEE_UNSPECIFIED }, { "tpm2", CNOS__JOIN__TEE__TEE_TPM2 },
                { "tpm", CNOS__JOIN__TEE__TEE_TPM2 },         { "sev-snp", CNOS__JOIN__TEE__TEE_SEV_SNP },
                { "snp", CNOS__JOIN__TEE__TEE_SEV_SNP },      { "tdx", CNOS__JOIN__TEE__TEE_TDX },
        };

        if (!s || !ret)
                return -EINVAL;
        for (size_t k = 0; k < ELEMENTSOF(names); k++)
                if (strcmp(s, names[k].name) == 0) {
                        *ret = names[k].tee;
                        return 0;
                }
        return -EINVAL;
}

static bool dev_exists(const char *dev_dir, const char *name) {
        _cleanup_free_ char *p = path_join(dev_dir, name);

        return p && path_exists(p);
}

Cnos__Join__Tee issuer_detect(const struct issuer_config *c) {
        const char *dev = c && c->dev_dir ? c->dev_dir : ISSUER_DEV_DIR_DEFAULT;

        /* A TD or an SNP guest may also have a (virtual) TPM; the hardware TEE is the stronger
         * evidence, so it is preferred. */
        if (dev_exists(dev, "tdx_guest"))
                return CNOS__JOIN__TEE__TEE_TDX;
        if (dev_exists(dev, "sev-guest"))
                return CNOS__JOIN__TEE__TEE_SEV_SNP;
        return CNOS__JOIN__TEE__TEE_TPM2;
}

int issuer_new(const struct issuer_config *c, struct issuer **ret, struct cnos_err *e) {
        _cleanup_issuer_ struct issuer *i = NULL;
        const struct issuer_config defaults = {};
        Cnos__Join__Tee tee;
        const char *log;
        int r;

        if (!ret)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!c)
                c = &defaults;

        tee = c->tee == CNOS__JOIN__TEE__TEE_UNSPECIFIED ? issuer_detect(c) : c->tee;
        if (!ops_for(tee))
                return cnos_err_set(e, -EINVAL, "unknown TEE %d", (int) tee);

        i = calloc(1, sizeof(*i));
        if (!i)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        i->ops = ops_for(tee);

        log = c->eventlog_path;
        if (!log)
                log = tee == CNOS__JOIN__TEE__TEE_TPM2 ? TPM2_EVENTLOG_DEFAULT : tee == CNOS__JOIN__TEE__TEE_TDX ? CCEL_LOG_PATH : "";
        if (*log && !(i->eventlog_path = strdup(log)))
                return cnos_err_set(e, -ENOMEM, "out of memory");
        i->tsm_path = strdup(c->tsm_path ? c->tsm_path : ISSUER_TSM_PATH_DEFAULT);
        i->sev_guest_path = path_join(c->dev_dir ? c->dev_dir : ISSUER_DEV_DIR_DEFAULT, "sev-guest");
        if (!i->tsm_path || !i->sev_guest_path)
                return cnos_err_set(e, -ENOMEM, "out of memory");

        r = i->ops->open(i, c, e);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(i);
        return 0;
}

void issuer_free(struct issuer *i) {
        if (!i)
                return;
        if (i->ops && i->ops->close)
                i->ops->close(i);
        free(i->eventlog_path);
        free(i->tsm_path);
        free(i->sev_guest_path);
        explicit_bzero(i, sizeof(*i));
        free(i);
}

Cnos__Join__Tee issuer_tee(const struct issuer *i) {
        return i ? i->ops->tee : CNOS__JOIN__TEE__TEE_UNSPECIFIED;
}

int issuer_collect(struct issuer *i, const uint8_t binding[static ISSUER_BINDING_SIZE], Cnos__Join__Evidence **ret,
                   struct cnos_err *e) {
        _cleanup_evidence_ Cnos__Join__Evidence *ev = NULL;
        int r;

        if (!i || !binding || !ret)
                return cnos_err_set(e, -EINVAL, "invalid argument");

        ev = malloc(sizeof(*ev));
        if (!ev)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        cnos__join__evidence__init(ev);
        ev->tee = i->ops->tee;

        r = i->ops->collect(i, binding, ev, e);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(ev);
        return 0;
}

static void bytes_free(ProtobufCBinaryData *b) {
        free(b->data);
        *b = (ProtobufCBinaryData) {};
}

void issuer_evidence_free(Cnos__Join__Evidence *ev) {
        if (!ev)
                return;
        if (ev->tpm) {
                Cnos__Join__TpmEvidence *t = ev->tpm;

                bytes_free(&t->ak_public);
                bytes_free(&t->quote_attest);
                bytes_free(&t->quote_signature);
                bytes_free(&t->ek_certificate);
                bytes_free(&t->eventlog);
                if (t->pcrs_sha256)
                        for (size_t k = 0; k < t->n_pcrs_sha256; k++)
                                bytes_free(&t->pcrs_sha256[k]);
                free(t->pcrs_sha256);
                free(t);
        }
        if (ev->snp) {
                bytes_free(&ev->snp->report);
                bytes_free(&ev->snp->vcek);
                bytes_free(&ev->snp->chain);
                free(ev->snp);
        }
        if (ev->tdx) {
                bytes_free(&ev->tdx->quote);
                bytes_free(&ev->tdx->ccel);
                free(ev->tdx);
        }
        free(ev);
}

int issuer_activate(struct issuer *i, const Cnos__Join__CredentialChallenge *challenge, uint8_t **ret_secret,
                    size_t *ret_size, struct cnos_err *e) {
        _cleanup_secure_ uint8_t *secret = NULL;
        size_t size = TPM2_SECRET_MAX;
        int r;

        if (!i || !challenge || !ret_secret || !ret_size)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!i->ops->activate)
                return cnos_err_set(e, -EOPNOTSUPP, "%s evidence has no credential activation", issuer_tee_to_string(i->ops->tee));

        secret = secure_alloc(size);
        if (!secret)
                return cnos_err_set(e, -ENOMEM, "cannot allocate locked memory for the credential secret");
        r = i->ops->activate(i, challenge, secret, &size, e);
        if (r < 0)
                return r;

        *ret_secret = TAKE_PTR(secret);
        *ret_size = size;
        return 0;
}

int issuer_bind_cluster(struct issuer *i, const uint8_t cluster_id[static ISSUER_CLUSTER_ID_SIZE], struct cnos_err *e) {
        if (!i || !cluster_id)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        if (!i->ops->bind_cluster)
                return cnos_err_set(e, -EOPNOTSUPP, "%s has no PCR 15 to bind the node to its cluster",
                                    issuer_tee_to_string(i->ops->tee));
        return i->ops->bind_cluster(i, cluster_id, e);
}
