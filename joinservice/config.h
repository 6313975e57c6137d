/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* cnos-joind's configuration: a file of `key = value` lines (`#` starts a comment line; blank lines
 * are ignored; a value runs to the end of the line, surrounding blanks removed) and command-line
 * flags named like the keys (`--listen 0.0.0.0:9000` = `listen = 0.0.0.0:9000`). Flags override
 * the file; a list key given as a flag replaces the file's whole list. See README.md for the keys.
 * Only paths and public parameters live here: secrets are read by secrets.c, never from here. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attestation/tdx.h"
#include "err.h"
#include "macro.h"

#define CONFIG_FILE_MAX (256U * 1024U)
#define CONFIG_LIST_MAX 64U
#define CONFIG_COMPONENTS_MAX 64U
#define CONFIG_STRING_MAX 256U

#define CONFIG_LISTEN_DEFAULT "0.0.0.0:9000"
#define CONFIG_WORKERS_DEFAULT 16U
#define CONFIG_MAX_CONNECTIONS_DEFAULT 64U
#define CONFIG_TIMEOUT_DEFAULT_MS 30000U
#define CONFIG_READ_TIMEOUT_DEFAULT_MS 10000U
#define CONFIG_CERT_VALIDITY_DEFAULT (24U * 3600U)

struct config_component {
        char *url;
        uint8_t sha256[32];
        char *install_path;
};

struct config_list {
        char *items[CONFIG_LIST_MAX];
        size_t n;
};

struct joind_config {
        char *listen;
        char *secret_file;
        int secret_fd; /* -1: none */
        char *manifest, *manifest_signature, *manifest_key;
        struct config_list ek_ca; /* PEM bundles or DER certificates */
        struct config_list snp_chain;
        char *snp_measurement; /* hex, 48 bytes */
        char *tdx_root;
        char *tdx_mrtd;                   /* hex, 48 bytes */
        char *tdx_rtmr[TDX_RTMR_COUNT];   /* hex, 48 bytes each, optional */
        char *ca_cert, *ca_key;
        char *tls_cert, *tls_key;         /* optional: default an ephemeral self-signed certificate */
        char *api_endpoint;
        struct config_component components[CONFIG_COMPONENTS_MAX];
        size_t n_components;
        uint64_t cert_validity; /* seconds */
        unsigned workers, max_connections;
        unsigned timeout_ms, read_timeout_ms;
        char *attest_tcti;
        char *attest_eventlog;
        char *ready_file;
        bool verbose;
        /* Bit i: config_key(i) was set by a flag. A flag overrides the file's value; the first flag
         * of a list key replaces the file's list, further ones append. */
        uint64_t set_by_flag;
};

void config_init(struct joind_config *c);
void config_done(struct joind_config *c);

/* Sets one key. from_flag: the value comes from the command line (overrides the file). -ENOENT for
 * an unknown key, -EINVAL for a bad value, each with a message. */
_warn_unused_result_ int config_set(struct joind_config *c, const char *key, const char *value, bool from_flag, struct cnos_err *e);

/* Parses a configuration file's text; keys already set by a flag keep the flag's value. */
_warn_unused_result_ int config_parse(struct joind_config *c, const char *text, size_t size, struct cnos_err *e);
_warn_unused_result_ int config_load_file(struct joind_config *c, const char *path, struct cnos_err *e);

/* What start-up requires of the result: secret source, manifest triple, cluster CA, API endpoint,
 * consistent TEE settings, sane numbers. */
_warn_unused_result_ int config_check(const struct joind_config *c, struct cnos_err *e);

/* "URL SHA256HEX INSTALL_PATH" -> component: URL with a scheme (https://...), 64 hex digits,
 * an absolute normalised path; printable, at most CONFIG_STRING_MAX bytes each. */
_warn_unused_result_ int config_parse_component(const char *value, struct config_component *ret, struct cnos_err *e);

/* "30s", "500ms", "24h", "2d", "90m" or plain seconds -> milliseconds. */
_warn_unused_result_ int config_parse_duration_ms(const char *s, uint64_t *ret);

/* The i-th key's name (NULL past the last), in the order of README.md, for getopt and --help. */
const char *config_key(size_t i);
/* Whether a key takes a value (every key but "verbose"). */
bool config_key_has_value(const char *key);
