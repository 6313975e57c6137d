/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>

#include "config.h"
#include "fileio.h"
#include "hex.h"

#define VALUE_MAX 4096U

enum kind {
        K_STRING,
        K_LIST,
        K_COMPONENT,
        K_UINT,
        K_DURATION_MS,
        K_DURATION_S,
        K_FD,
        K_BOOL,
};

struct key {
        const char *name;
        enum kind kind;
        size_t offset;
        uint64_t min, max; /* K_UINT / durations */
};

#define OFF(m) offsetof(struct joind_config, m)

static const struct key keys[] = {
        { "listen", K_STRING, OFF(listen) },
        { "secret-file", K_STRING, OFF(secret_file) },
        { "secret-fd", K_FD, OFF(secret_fd) },
        { "manifest", K_STRING, OFF(manifest) },
        { "manifest-signature", K_STRING, OFF(manifest_signature) },
        { "manifest-key", K_STRING, OFF(manifest_key) },
        { "ek-ca", K_LIST, OFF(ek_ca) },
        { "snp-chain", K_LIST, OFF(snp_chain) },
        { "snp-measurement", K_STRING, OFF(snp_measurement) },
        { "tdx-root", K_STRING, OFF(tdx_root) },
        { "tdx-mrtd", K_STRING, OFF(tdx_mrtd) },
        { "tdx-rtmr0", K_STRING, OFF(tdx_rtmr[0]) },
        { "tdx-rtmr1", K_STRING, OFF(tdx_rtmr[1]) },
        { "tdx-rtmr2", K_STRING, OFF(tdx_rtmr[2]) },
        { "tdx-rtmr3", K_STRING, OFF(tdx_rtmr[3]) },
        { "ca-cert", K_STRING, OFF(ca_cert) },
        { "ca-key", K_STRING, OFF(ca_key) },
        { "tls-cert", K_STRING, OFF(tls_cert) },
        { "tls-key", K_STRING, OFF(tls_key) },
        { "api-endpoint", K_STRING, OFF(api_endpoint) },
        { "component", K_COMPONENT, OFF(components) },
        { "cert-validity", K_DURATION_S, OFF(cert_validity), 60, 366ULL * 24 * 3600 },
        { "workers", K_UINT, OFF(workers), 1, 1024 },
        { "max-connections", K_UINT, OFF(max_connections), 1, 65536 },
        { "timeout", K_DURATION_MS, OFF(timeout_ms), 100, 3600 * 1000 },
        { "read-timeout", K_DURATION_MS, OFF(read_timeout_ms), 100, 3600 * 1000 },
        { "attest-tcti", K_STRING, OFF(attest_tcti) },
        { "attest-eventlog", K_STRING, OFF(attest_eventlog) },
        { "ready-file", K_STRING, OFF(ready_file) },
        { "verbose", K_BOOL, OFF(verbose) },
};

const char *config_key(size_t i) {
        return i < ELEMENTSOF(keys) ? keys[i].name : NULL;
}

_Static_assert(ELEMENTSOF(keys) <= 64, "set_by_flag has 64 bits");

void config_init(struct joind_config *c) {
        *c = (struct joind_config) {
                .secret_fd = -1,
                .cert_validity = CONFIG_CERT_VALIDITY_DEFAULT,
                .workers = CONFIG_WORKERS_DEFAULT,
                .max_connections = CONFIG_MAX_CONNECTIONS_DEFAULT,
                .timeout_ms = CONFIG_TIMEOUT_DEFAULT_MS,
                .read_timeout_ms = CONFIG_READ_TIMEOUT_DEFAULT_MS,
        };
}

static void list_clear(struct config_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i]);
        l->n = 0;
}

static void components_clear(struct joind_config *c) {
        for (size_t i = 0; i < c->n_components; i++) {
                free(c->components[i].url);
                free(c->components[i].install_path);
        }
        c->n_components = 0;
}

void config_done(struct joind_config *c) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                void *p = (uint8_t *) c + keys[i].offset;

                if (keys[i].kind == K_STRING) {
                        free(*(char **) p);
                        *(char **) p = NULL;
                } else if (keys[i].kind == K_LIST)
                        list_clear(p);
        }
        components_clear(c);
}

static bool printable(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s > 0x7e)
                        return false;
        return true;
}

int config_parse_duration_ms(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                uint64_t ms;
        } units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 }, { "", 1000 } };
        uint64_t v = 0, out;
        const char *p = s;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *p); p++)
                if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t) (*p - '0'), &v))
                        return -ERANGE;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strcmp(p, units[i].suffix) == 0) {
                        if (__builtin_mul_overflow(v, units[i].ms, &out))
                                return -ERANGE;
                        *ret = out;
                        return 0;
                }
        return -EINVAL;
}

static bool url_valid(const char *u) {
        const char *sep = strstr(u, "://");

        if (!sep || sep == u || !isalpha((unsigned char) u[0]) || sep[3] == 0)
                return false;
        for (const char *p = u; p < sep; p++)
                if (!isalnum((unsigned char) *p) && *p != '+' && *p != '-' && *p != '.')
                        return false;
        return true;
}

static bool install_path_valid(const char *p) {
        size_t n = strlen(p);

        if (n < 2 || p[0] != '/' || p[n - 1] == '/')
                return false;
        /* every component non-empty and neither "." nor ".." */
        for (const char *c = p + 1; *c;) {
                const char *end = strchrnul(c, '/');
                size_t len = (size_t) (end - c);

                if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                c = *end ? end + 1 : end;
        }
        return true;
}

int config_parse_component(const char *value, struct config_component *ret, struct cnos_err *e) {
        char tok[3][VALUE_MAX];
        const char *p = value;
        size_t n = 0;

        if (!value || strlen(value) >= VALUE_MAX)
                return cnos_err_set(e, -EINVAL, "component: expected \"URL SHA256 INSTALL_PATH\"");
        while (*p) {
                size_t len;

                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                if (n == 3)
                        return cnos_err_set(e, -EINVAL, "component: more than three fields (URL SHA256 INSTALL_PATH)");
                len = strcspn(p, " \t");
                memcpy(tok[n], p, len);
                tok[n][len] = 0;
                n++;
                p += len;
        }
        if (n != 3)
                return cnos_err_set(e, -EINVAL, "component: expected three fields \"URL SHA256 INSTALL_PATH\", got %zu", n);
        for (size_t i = 0; i < 3; i++)
                if (strlen(tok[i]) > CONFIG_STRING_MAX || !printable(tok[i]))
                        return cnos_err_set(e, -EINVAL, "component: field %zu is not printable or longer than %u bytes", i + 1,
                                            CONFIG_STRING_MAX);
        if (!url_valid(tok[0]))
                return cnos_err_set(e, -EINVAL, "component: \"%s\" is not a URL (scheme://...)", tok[0]);
        if (strlen(tok[1]) != 64 || hex_decode(tok[1], ret->sha256, 32) < 0)
                return cnos_err_set(e, -EINVAL, "component %s: the sha256 must be 64 hex digits", tok[0]);
        if (!install_path_valid(tok[2]))
                return cnos_err_set(e, -EINVAL, "component %s: install path \"%s\" is not an absolute, normalised path",
                                    tok[0], tok[2]);
        ret->url = strdup(tok[0]);
        ret->install_path = strdup(tok[2]);
        if (!ret->url || !ret->install_path) {
                free(ret->url);
                free(ret->install_path);
                return cnos_err_set(e, -ENOMEM, "out of memory");
        }
        return 0;
}

static const struct key *find_key(const char *name, size_t *ret_index) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].name, name) == 0) {
                        *ret_index = i;
                        return &keys[i];
                }
        return NULL;
}

bool config_key_has_value(const char *key) {
        size_t i;
        const struct key *k = find_key(key, &i);
        return !k || k->kind != K_BOOL;
}

int config_set(struct joind_config *c, const char *name, const char *value, bool from_flag, struct cnos_err *e) {
        const struct key *k;
        size_t idx;
        void *p;
        uint64_t bit, v;
        int r;

        k = find_key(name, &idx);
        if (!k)
                return cnos_err_set(e, -ENOENT, "unknown key \"%s\"", name);
        bit = UINT64_C(1) << idx;
        if (!from_flag && (c->set_by_flag & bit))
                return 0; /* the command line wins */
        if (k->kind == K_BOOL && !value)
                value = "yes";
        /* a component's fields may be separated by tabs; it checks each field itself */
        if (!value || strlen(value) >= VALUE_MAX || (k->kind != K_COMPONENT && !printable(value)))
                return cnos_err_set(e, -EINVAL, "%s: the value must be printable text of at most %u bytes", name, VALUE_MAX - 1);
        p = (uint8_t *) c + k->offset;

        switch (k->kind) {
        case K_STRING: {
                char *s;

                if (!*value)
                        return cnos_err_set(e, -EINVAL, "%s: empty value", name);
                s = strdup(value);
                if (!s)
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                free(*(char **) p);
                *(char **) p = s;
                break;
        }
        case K_LIST: {
                struct config_list *l = p;

                if (from_flag && !(c->set_by_flag & bit))
                        list_clear(l);
                if (!*value)
                        return cnos_err_set(e, -EINVAL, "%s: empty value", name);
                if (l->n >= CONFIG_LIST_MAX)
                        return cnos_err_set(e, -E2BIG, "%s: more than %u entries", name, CONFIG_LIST_MAX);
                l->items[l->n] = strdup(value);
                if (!l->items[l->n])
                        return cnos_err_set(e, -ENOMEM, "out of memory");
                l->n++;
                break;
        }
        case K_COMPONENT:
                if (from_flag && !(c->set_by_flag & bit))
                        components_clear(c);
                if (c->n_components >= CONFIG_COMPONENTS_MAX)
                        return cnos_err_set(e, -E2BIG, "component: more than %u components", CONFIG_COMPONENTS_MAX);
                r = config_parse_component(value, &c->components[c->n_components], e);
                if (r < 0)
                        return r;
                c->n_components++;
                break;
        case K_UINT: {
                char *end;

                errno = 0;
                v = strtoull(value, &end, 10);
                if (!isdigit((unsigned char) value[0]) || *end || errno || v < k->min || v > k->max)
                        return cnos_err_set(e, -EINVAL, "%s: expected a number from %" PRIu64 " to %" PRIu64, name, k->min, k->max);
                *(unsigned *) p = (unsigned) v;
                break;
        }
        case K_DURATION_MS:
        case K_DURATION_S: {
                uint64_t lo = k->kind == K_DURATION_S ? k->min * 1000 : k->min, hi = k->kind == K_DURATION_S ? k->max * 1000 : k->max;

                if (config_parse_duration_ms(value, &v) < 0 || v < lo || v > hi)
                        return cnos_err_set(e, -EINVAL, "%s: expected a duration (e.g. 30s, 24h) from %" PRIu64 " ms to %" PRIu64 " ms",
                                            name, lo, hi);
                if (k->kind == K_DURATION_S)
                        *(uint64_t *) p = v / 1000;
                else
                        *(unsigned *) p = (unsigned) v;
                break;
        }
        case K_FD: {
                char *end;
                long fd;

                errno = 0;
                fd = strtol(value, &end, 10);
                if (!isdigit((unsigned char) value[0]) || *end || errno || fd < 0 || fd > INT32_MAX)
                        return cnos_err_set(e, -EINVAL, "%s: expected a file descriptor number", name);
                *(int *) p = (int) fd;
                break;
        }
        case K_BOOL:
                if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
                        *(bool *) p = true;
                else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
                        *(bool *) p = false;
                else
                        return cnos_err_set(e, -EINVAL, "%s: expected yes or no", name);
                break;
        }
        if (from_flag)
                c->set_by_flag |= bit;
        return 0;
}

int config_parse(struct joind_config *c, const char *text, size_t size, struct cnos_err *e) {
        size_t pos = 0, line_no = 0;

        while (pos < size) {
                const char *line = text + pos, *end = memchr(line, '\n', size - pos);
                size_t len = end ? (size_t) (end - line) : size - pos;
                char buf[VALUE_MAX + 64], *k, *v, *eq, *t;
                int r;

                pos += len + (end ? 1 : 0);
                line_no++;
                if (len >= sizeof(buf))
                        return cnos_err_set(e, -EINVAL, "line %zu: longer than %zu bytes", line_no, sizeof(buf) - 1);
                memcpy(buf, line, len);
                buf[len] = 0;
                if (memchr(buf, 0, len))
                        return cnos_err_set(e, -EINVAL, "line %zu: NUL byte", line_no);
                for (k = buf; isspace((unsigned char) *k); k++)
                        ;
                for (t = k + strlen(k); t > k && isspace((unsigned char) t[-1]); t--)
                        *(t - 1) = 0;
                if (*k == 0 || *k == '#')
                        continue;
                eq = strchr(k, '=');
                if (!eq)
                        return cnos_err_set(e, -EINVAL, "line %zu: expected key = value", line_no);
                *eq = 0;
                for (t = eq; t > k && isspace((unsigned char) t[-1]); t--)
                        *(t - 1) = 0;
                for (v = eq + 1; isspace((unsigned char) *v); v++)
                        ;
                if (strcmp(k, "config") == 0)
                        return cnos_err_set(e, -EINVAL, "line %zu: a configuration file cannot include another", line_no);
                r = config_set(c, k, v, false, e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "line %zu: ", line_no);
        }
        return 0;
}

int config_load_file(struct joind_config *c, const char *path, struct cnos_err *e) {
        _cleanup_free_ uint8_t *text = NULL;
        size_t size;
        int r;

        r = read_file(path, CONFIG_FILE_MAX, &text, &size);
        if (r < 0)
                return cnos_err_set(e, r, "%s: cannot read: %s", path, strerror(-r));
        r = config_parse(c, (const char *) text, size, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", path);
        return 0;
}

static bool endpoint_valid(const char *s, bool allow_port_zero) {
        const char *colon = strrchr(s, ':');
        char *end;
        long port;

        if (!colon || colon == s || strlen(s) > CONFIG_STRING_MAX)
                return false;
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (!isdigit((unsigned char) colon[1]) || *end || errno || port < (allow_port_zero ? 0 : 1) || port > 65535)
                return false;
        if (s[0] == '[')
                return colon[-1] == ']' && colon - s > 2;
        return true;
}

static bool hex48(const char *s) {
        uint8_t b[48];
        return s && hex_decode(s, b, sizeof(b)) == 0;
}

int config_check(const struct joind_config *c, struct cnos_err *e) {
        bool tdx;

        if (!!c->secret_file == (c->secret_fd >= 0))
                return cnos_err_set(e, -EINVAL, "give the master secret with exactly one of secret-file or secret-fd");
        if (!c->manifest || !c->manifest_signature || !c->manifest_key)
                return cnos_err_set(e, -EINVAL, "a signed measurement manifest is required: manifest, manifest-signature, manifest-key");
        if (!c->ca_cert || !c->ca_key)
                return cnos_err_set(e, -EINVAL, "the cluster CA is required: ca-cert and ca-key");
        if (!c->api_endpoint)
                return cnos_err_set(e, -EINVAL, "api-endpoint is required");
        if (!endpoint_valid(c->api_endpoint, false))
                return cnos_err_set(e, -EINVAL, "api-endpoint \"%s\" is not host:port", c->api_endpoint);
        if (c->listen && !endpoint_valid(c->listen, true))
                return cnos_err_set(e, -EINVAL, "listen \"%s\" is not host:port", c->listen);
        if (!!c->tls_cert != !!c->tls_key)
                return cnos_err_set(e, -EINVAL, "tls-cert and tls-key go together");
        if ((c->snp_chain.n > 0) != !!c->snp_measurement)
                return cnos_err_set(e, -EINVAL, "SEV-SNP needs both snp-chain and snp-measurement");
        if (c->snp_measurement && !hex48(c->snp_measurement))
                return cnos_err_set(e, -EINVAL, "snp-measurement must be 96 hex digits");
        tdx = c->tdx_root || c->tdx_mrtd;
        for (size_t i = 0; i < TDX_RTMR_COUNT; i++) {
                tdx = tdx || c->tdx_rtmr[i];
                if (c->tdx_rtmr[i] && !hex48(c->tdx_rtmr[i]))
                        return cnos_err_set(e, -EINVAL, "tdx-rtmr%zu must be 96 hex digits", i);
        }
        if (tdx && (!c->tdx_root || !c->tdx_mrtd))
                return cnos_err_set(e, -EINVAL, "TDX needs both tdx-root and tdx-mrtd");
        if (c->tdx_mrtd && !hex48(c->tdx_mrtd))
                return cnos_err_set(e, -EINVAL, "tdx-mrtd must be 96 hex digits");
        if (c->ek_ca.n == 0 && c->snp_chain.n == 0 && !tdx)
                return cnos_err_set(e, -EINVAL, "no TEE is configured: give ek-ca (TPM 2.0), snp-chain (SEV-SNP) or tdx-root (TDX)");
        if (c->attest_eventlog && !c->attest_tcti)
                return cnos_err_set(e, -EINVAL, "attest-eventlog needs attest-tcti");
        if (c->max_connections < c->workers)
                return cnos_err_set(e, -EINVAL, "max-connections (%u) must be at least workers (%u)", c->max_connections,
                                    c->workers);
        return 0;
}
