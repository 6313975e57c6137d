/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-joind: verifies joining nodes and hands out disk keys and node credentials. See README.md. */
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/prctl.h>

#include "atls/atls.h"
#include "attest.h"
#include "attestation/snp.h"
#include "attestation/x509util.h"
#include "ca.h"
#include "config.h"
#include "fileio.h"
#include "hex.h"
#include "join.h"
#include "log.h"
#include "manifest.h"
#include "secrets.h"
#include "server.h"
#include "signature.h"

#define SIGNATURE_FILE_MAX (64U * 1024U)
#define CERT_FILE_MAX (1024U * 1024U)
#define OPT_KEY_BASE 0x100

/* Everything main() owns; struct joind borrows from it. */
struct state {
        struct joind d;
        struct joind_secrets *secrets;
        struct joind_ca *ca;
        struct manifest manifest;
        STACK_OF(X509) *ek_ca;
        struct x509_anchors *ek_anchors;
        struct snp_chain *snp_chains[VALIDATOR_SNP_CHAINS_MAX];
        size_t n_snp_chains;
        uint8_t snp_measurement[SNP_MEASUREMENT_SIZE];
        X509 *tdx_root;
        uint8_t tdx_mrtd[TDX_MR_SIZE];
        uint8_t tdx_rtmr[TDX_RTMR_COUNT][TDX_MR_SIZE];
        struct joind_attester *attester;
        Cnos__Join__Component components[CONFIG_COMPONENTS_MAX];
        Cnos__Join__Component *component_ptrs[CONFIG_COMPONENTS_MAX];
        SSL_CTX *tls;
};

static void state_done(struct state *s) {
        secrets_free(s->secrets);
        ca_free(s->ca);
        x509_anchors_free(s->ek_anchors);
        x509_stack_free(s->ek_ca);
        for (size_t i = 0; i < s->n_snp_chains; i++)
                snp_chain_free(s->snp_chains[i]);
        X509_free(s->tdx_root);
        attester_free(s->attester);
        SSL_CTX_free(s->tls);
}

static void help(void) {
        printf("Usage: %s [--config FILE] [OPTIONS]\n"
               "Verifies joining cnos nodes and hands out disk keys and node credentials.\n\n"
               "Every option is also a configuration-file key (key = value); options override the file.\n"
               "  --config FILE              configuration file\n"
               "  --listen HOST:PORT         address to listen on (default %s; port 0: any free port)\n"
               "  --secret-file FILE         master secret and salt (mode 0600, owned by this user)\n"
               "  --secret-fd N              ... or read them from this file descriptor\n"
               "  --manifest FILE            signed measurement manifest (measurements.json)\n"
               "  --manifest-signature FILE  its detached signature (base64 DER ECDSA P-256)\n"
               "  --manifest-key FILE        the public key (PEM) the signature must verify with\n"
               "  --ek-ca FILE               TPM EK CA certificates (PEM bundle or DER; repeatable)\n"
               "  --snp-chain FILE           AMD ARK/ASK chain, PEM (repeatable, one per product)\n"
               "  --snp-measurement HEX      expected SEV-SNP launch measurement (48 bytes)\n"
               "  --tdx-root FILE            Intel SGX root CA\n"
               "  --tdx-mrtd HEX             expected MRTD (48 bytes); --tdx-rtmr0..3 HEX optional\n"
               "  --ca-cert FILE             cluster CA certificate (PEM)\n"
               "  --ca-key FILE              cluster CA private key (PEM, mode 0600)\n"
               "  --tls-cert FILE, --tls-key FILE  TLS identity (default: ephemeral self-signed)\n"
               "  --api-endpoint HOST:PORT   Kubernetes API endpoint for the tickets\n"
               "  --component \"URL SHA256 PATH\"  a hash-pinned component (repeatable)\n"
               "  --cert-validity DURATION   node certificate validity (default 24h)\n"
               "  --workers N                worker threads (default %u)\n"
               "  --max-connections N        open connections beyond which new ones are refused (default %u)\n"
               "  --timeout DURATION         per-connection deadline (default 30s)\n"
               "  --read-timeout DURATION    bound on each read (default 10s)\n"
               "  --attest-tcti TCTI         present this TPM's evidence when a client asks (mutual attestation)\n"
               "  --attest-eventlog FILE     ... with this event log\n"
               "  --ready-file FILE          write the bound address here once listening\n"
               "  -v, --verbose              debug logging\n"
               "  -h, --help\n",
               program_invocation_short_name, CONFIG_LISTEN_DEFAULT, CONFIG_WORKERS_DEFAULT, CONFIG_MAX_CONNECTIONS_DEFAULT);
}

struct flag {
        const char *key;
        const char *value;
};

static int parse_args(int argc, char **argv, struct joind_config *c) {
        struct option opts[72];
        _cleanup_free_ struct flag *flags = NULL;
        const char *config_path = NULL;
        struct cnos_err e = {};
        size_t n_opts = 0, n_flags = 0;
        int opt, idx, r;

        for (size_t i = 0; config_key(i) && n_opts < ELEMENTSOF(opts) - 4; i++)
                opts[n_opts++] = (struct option) { config_key(i), config_key_has_value(config_key(i)) ? required_argument : no_argument,
                                                   NULL, OPT_KEY_BASE + (int) i };
        opts[n_opts++] = (struct option) { "config", required_argument, NULL, 'c' };
        opts[n_opts++] = (struct option) { "help", no_argument, NULL, 'h' };
        opts[n_opts] = (struct option) {};

        flags = calloc((size_t) argc, sizeof(*flags));
        if (!flags)
                return log_oom();
        while ((opt = getopt_long(argc, argv, "c:hv", opts, &idx)) >= 0) {
                switch (opt) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case 'v':
                        flags[n_flags++] = (struct flag) { "verbose", NULL };
                        break;
                case '?':
                        return -EINVAL;
                default:
                        if (opt < OPT_KEY_BASE || !config_key((size_t) (opt - OPT_KEY_BASE)))
                                return -EINVAL;
                        flags[n_flags++] = (struct flag) { config_key((size_t) (opt - OPT_KEY_BASE)), optarg };
                }
        }
        if (optind < argc) {
                log_error("unexpected argument \"%s\"", argv[optind]);
                return -EINVAL;
        }
        if (config_path) {
                r = config_load_file(c, config_path, &e);
                if (r < 0)
                        return log_error_errno(r, "%s", cnos_err_msg(&e));
        }
        for (size_t i = 0; i < n_flags; i++) {
                cnos_err_clear(&e);
                r = config_set(c, flags[i].key, flags[i].value, true, &e);
                if (r < 0)
                        return log_error_errno(r, "--%s", cnos_err_msg(&e));
        }
        return 1;
}

static int load_manifest(const struct joind_config *c, struct manifest *ret) {
        _cleanup_free_ uint8_t *text = NULL, *sig = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        struct cnos_err e = {};
        size_t text_size, sig_size, enforced = 0, warn_only = 0;
        int r;

        r = read_file(c->manifest, MANIFEST_MAX_SIZE, &text, &text_size);
        if (r < 0)
                return log_error_errno(r, "manifest %s: cannot read: %m", c->manifest);
        r = read_file(c->manifest_signature, SIGNATURE_FILE_MAX, &sig, &sig_size);
        if (r < 0)
                return log_error_errno(r, "manifest signature %s: cannot read: %m", c->manifest_signature);
        r = cnos_load_verify_key(c->manifest_key, &key, &e);
        if (r < 0)
                return log_error_errno(r, "manifest key %s: %s", c->manifest_key, cnos_err_msg(&e));
        r = cnos_verify(key, text, text_size, sig, sig_size, &e);
        if (r < 0)
                return log_error_errno(r, "manifest %s: the signature does not verify with %s: %s", c->manifest,
                                       c->manifest_key, cnos_err_msg(&e));
        r = manifest_parse((const char *) text, text_size, ret, &e);
        if (r < 0)
                return log_error_errno(r, "manifest %s: %s", c->manifest, cnos_err_msg(&e));
        if (ret->alg != CNOS_HASH_SHA256)
                return log_error_errno(-EINVAL, "manifest %s: lists %s PCRs; nodes quote the sha256 bank", c->manifest,
                                       cnos_hash_name(ret->alg) ?: "unknown");
        for (size_t i = 0; i < CNOS_PCR_COUNT; i++)
                if (ret->pcrs[i].present)
                        (*(ret->pcrs[i].warn_only ? &warn_only : &enforced))++;
        if (enforced == 0)
                return log_error_errno(-EINVAL, "manifest %s: enforces no PCR (all %zu are warn-only): it would accept any machine",
                                       c->manifest, warn_only);
        log_info("manifest %s %s: signature verified, %zu PCRs enforced, %zu warn-only", ret->name, ret->version, enforced,
                 warn_only);
        return 0;
}

static int bundle_add_file(STACK_OF(X509) *bundle, const char *path) {
        _cleanup_x509_stack_ STACK_OF(X509) *pem = NULL;
        struct cnos_err e = {};
        X509 *one = NULL;

        if (x509_bundle_from_pem_file(path, &pem, &e) == 0) {
                while (sk_X509_num(pem) > 0) {
                        X509 *x = sk_X509_shift(pem);
                        if (!sk_X509_push(bundle, x)) {
                                X509_free(x);
                                return log_oom();
                        }
                }
                return 0;
        }
        cnos_err_clear(&e);
        if (x509_from_file(path, &one, &e) < 0)
                return log_error_errno(-EINVAL, "EK CA %s: %s", path, cnos_err_msg(&e));
        if (!sk_X509_push(bundle, one)) {
                X509_free(one);
                return log_oom();
        }
        return 0;
}

static int load_tees(const struct joind_config *c, struct state *s) {
        struct validator_policy *p = &s->d.policy;
        struct cnos_err e = {};
        int r;

        p->manifest = &s->manifest;
        if (c->ek_ca.n > 0) {
                s->ek_ca = sk_X509_new_null();
                if (!s->ek_ca)
                        return log_oom();
                for (size_t i = 0; i < c->ek_ca.n; i++) {
                        r = bundle_add_file(s->ek_ca, c->ek_ca.items[i]);
                        if (r < 0)
                                return r;
                }
                /* The roots' self-signatures are checked here, once, not on every join; a bundle
                 * without a root could never admit a node, so it stops the start. */
                r = x509_anchors_new(s->ek_ca, &s->ek_anchors, &e);
                if (r < 0)
                        return log_error_errno(r, "EK CA: %s", cnos_err_msg(&e));
                p->ek_ca_bundle = s->ek_ca;
                p->ek_anchors = s->ek_anchors;
                s->d.tee_enabled[CNOS__JOIN__TEE__TEE_TPM2] = true;
        }
        if (c->snp_chain.n > 0) {
                if (c->snp_chain.n > VALIDATOR_SNP_CHAINS_MAX)
                        return log_error_errno(-E2BIG, "more than %d snp-chain files", VALIDATOR_SNP_CHAINS_MAX);
                for (size_t i = 0; i < c->snp_chain.n; i++) {
                        r = snp_chain_load_file(c->snp_chain.items[i], &s->snp_chains[i], &e);
                        if (r < 0)
                                return log_error_errno(r, "snp-chain %s: %s", c->snp_chain.items[i], cnos_err_msg(&e));
                        s->n_snp_chains++;
                        p->snp_chains[i] = s->snp_chains[i];
                }
                p->n_snp_chains = s->n_snp_chains;
                if (hex_decode(c->snp_measurement, s->snp_measurement, SNP_MEASUREMENT_SIZE) < 0)
                        return log_error_errno(-EINVAL, "snp-measurement: not 96 hex digits");
                p->snp.measurement = s->snp_measurement;
                s->d.tee_enabled[CNOS__JOIN__TEE__TEE_SEV_SNP] = true;
        }
        if (c->tdx_root) {
                r = x509_from_file(c->tdx_root, &s->tdx_root, &e);
                if (r < 0)
                        return log_error_errno(r, "tdx-root %s", cnos_err_msg(&e));
                if (hex_decode(c->tdx_mrtd, s->tdx_mrtd, TDX_MR_SIZE) < 0)
                        return log_error_errno(-EINVAL, "tdx-mrtd: not 96 hex digits");
                p->tdx_root = s->tdx_root;
                p->tdx_mrtd = s->tdx_mrtd;
                for (size_t i = 0; i < TDX_RTMR_COUNT; i++)
                        if (c->tdx_rtmr[i]) {
                                if (hex_decode(c->tdx_rtmr[i], s->tdx_rtmr[i], TDX_MR_SIZE) < 0)
                                        return log_error_errno(-EINVAL, "tdx-rtmr%zu: not 96 hex digits", i);
                                p->tdx_rtmr[i] = s->tdx_rtmr[i];
                        }
                s->d.tee_enabled[CNOS__JOIN__TEE__TEE_TDX] = true;
        }
        log_info("accepting:%s%s%s", s->d.tee_enabled[CNOS__JOIN__TEE__TEE_TPM2] ? " tpm2" : "",
                 s->d.tee_enabled[CNOS__JOIN__TEE__TEE_SEV_SNP] ? " sev-snp" : "",
                 s->d.tee_enabled[CNOS__JOIN__TEE__TEE_TDX] ? " tdx" : "");
        return 0;
}

static int load_tls(const struct joind_config *c, struct state *s) {
        struct cnos_err e = {};
        X509 *cert = NULL;
        EVP_PKEY *key = NULL;
        int r;

        if (c->tls_cert) {
                r = atls_server_ctx_new(c->tls_cert, c->tls_key, &s->tls, &e);
                if (r < 0)
                        return log_error_errno(r, "TLS: %s", cnos_err_msg(&e));
                return 0;
        }
        /* Clients authenticate this service by its attestation or a pinned CA, not by this key. */
        r = atls_selfsigned("cnos-joind", 365, &cert, &key, &e);
        if (r >= 0)
                r = atls_server_ctx_new_mem(cert, key, &s->tls, &e);
        X509_free(cert);
        EVP_PKEY_free(key);
        if (r < 0)
                return log_error_errno(r, "TLS: %s", cnos_err_msg(&e));
        return 0;
}

static int write_ready_file(const char *path, const char *bound) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(bound);
        char line[SERVER_ADDR_MAX + 1];

        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return log_oom();
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return log_error_errno(negative_errno(), "ready file %s: %m", tmp);
        memcpy(line, bound, n);
        line[n++] = '\n';
        if (write(fd, line, n) != (ssize_t) n || fsync(fd) < 0 || rename(tmp, path) < 0)
                return log_error_errno(negative_errno(), "ready file %s: %m", path);
        return 0;
}

static int setup(const struct joind_config *c, struct state *s) {
        struct cnos_err e = {};
        int r;

        r = c->secret_file ? secrets_load_file(c->secret_file, &s->secrets, &e) : secrets_load_fd(c->secret_fd, &s->secrets, &e);
        if (r < 0)
                return log_error_errno(r, "master secret: %s", cnos_err_msg(&e));
        s->d.secrets = s->secrets;

        r = load_manifest(c, &s->manifest);
        if (r < 0)
                return r;
        r = load_tees(c, s);
        if (r < 0)
                return r;

        r = ca_load(c->ca_cert, c->ca_key, &s->ca, &e);
        if (r < 0)
                return log_error_errno(r, "cluster CA: %s", cnos_err_msg(&e));
        s->d.ca = s->ca;

        for (size_t i = 0; i < c->n_components; i++) {
                s->components[i] = (Cnos__Join__Component) CNOS__JOIN__COMPONENT__INIT;
                s->components[i].url = c->components[i].url;
                s->components[i].sha256 = (ProtobufCBinaryData) { 32, (uint8_t *) c->components[i].sha256 };
                s->components[i].install_path = c->components[i].install_path;
                s->component_ptrs[i] = &s->components[i];
        }
        s->d.components = s->components;
        s->d.component_ptrs = s->component_ptrs;
        s->d.n_components = c->n_components;
        s->d.api_endpoint = c->api_endpoint;
        s->d.cert_validity = c->cert_validity;
        s->d.read_timeout_ms = c->read_timeout_ms;

        if (c->attest_tcti) {
                r = attester_open(c->attest_tcti, c->attest_eventlog, &s->attester, &e);
                if (r < 0)
                        return log_error_errno(r, "attest-tcti %s: %s", c->attest_tcti, cnos_err_msg(&e));
                s->d.attester = s->attester;
                log_info("mutual attestation: presenting the evidence of the TPM at %s", c->attest_tcti);
        }
        return load_tls(c, s);
}

int main(int argc, char **argv) {
        struct joind_config c;
        struct state s = {};
        char bound[SERVER_ADDR_MAX];
        struct cnos_err e = {};
        int r, fd;

        /* No core dumps and no ptrace by other users of this uid: memory holds the master secret. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        (void) signal(SIGPIPE, SIG_IGN);
        /* OpenSSL's secure heap keeps the CA's private key material in locked memory too. */
        if (CRYPTO_secure_malloc_init(256 * 1024, 32) == 0)
                log_warning("OpenSSL secure heap unavailable; the CA key lives in ordinary memory");

        config_init(&c);
        r = parse_args(argc, argv, &c);
        if (r <= 0) {
                config_done(&c);
                return r < 0 ? 2 : 0;
        }
        if (c.verbose)
                log_max_level = LOG_LVL_DEBUG;
        r = config_check(&c, &e);
        if (r < 0) {
                log_error("configuration: %s", cnos_err_msg(&e));
                config_done(&c);
                return 2;
        }

        r = setup(&c, &s);
        if (r < 0)
                goto out;

        fd = server_listen(c.listen ?: CONFIG_LISTEN_DEFAULT, bound, &e);
        if (fd < 0) {
                r = log_error_errno(fd, "%s", cnos_err_msg(&e));
                goto out;
        }
        if (c.ready_file) {
                r = write_ready_file(c.ready_file, bound);
                if (r < 0) {
                        (void) close(fd);
                        goto out;
                }
        }
        log_info("ready: listening on %s (%u workers, at most %u connections, %u ms deadline)", bound, c.workers,
                 c.max_connections, c.timeout_ms);

        r = server_run(&s.d, s.tls, fd, &(struct server_params) {
                .workers = c.workers,
                .max_connections = c.max_connections,
                .timeout_ms = c.timeout_ms,
        });
        if (r >= 0)
                log_info("stopped");
out:
        state_done(&s);
        config_done(&c);
        CRYPTO_secure_malloc_done();
        return r < 0 ? 1 : 0;
}
