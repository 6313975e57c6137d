/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-bootstrapper: the node's program in the initrd. This step: join the cluster - attest to the
 * join service over attested TLS and receive the ticket (disk key, cluster ID, kubelet credentials).
 * Later steps (state disk, PCR 15, handoff) build on the ticket, which lives in locked memory only. */

#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <sys/prctl.h>

#include "attestation/tpm2.h"
#include "cmdline.h"
#include "csr.h"
#include "hex.h"
#include "joinclient.h"
#include "log.h"
#include "serverpolicy.h"

#define CMDLINE_JOIN_KEY "cnos.join"
#define CMDLINE_NODE_KEY "cnos.node"
/* OpenSSL's secure heap (mlock()ed, never dumped) for the kubelet key's private scalar. */
#define SECURE_HEAP_SIZE (64 * 1024)
#define SECURE_HEAP_MIN 32

static struct {
        const char *join;
        const char *cmdline_file;
        const char *tcti;
        const char *tee;
        const char *eventlog;
        const char *tsm_path;
        const char *node_name;
        const char *role;
        const char *disk_uuid;
        bool require_server_attestation;
        const char *server_manifest, *server_manifest_sig, *server_manifest_pubkey, *server_ek_ca;
        const char *ca;
        uint32_t initial_backoff_ms, max_backoff_ms;
        unsigned attempts;
        uint32_t timeout_ms;
} arg = {
        .role = "worker",
        .initial_backoff_ms = BACKOFF_INITIAL_MS_DEFAULT,
        .max_backoff_ms = BACKOFF_MAX_MS_DEFAULT,
        .timeout_ms = JOIN_TIMEOUT_MS_DEFAULT,
};

static void help(void) {
        printf("Usage: cnos-bootstrapper [OPTIONS]\n"
               "Joins this node to its cluster: attests to the join service and receives the ticket.\n\n"
               "  --join HOST:PORT             join service (default: cnos.join= on the kernel command line)\n"
               "  --cmdline-file PATH          read the kernel command line from PATH (default /proc/cmdline)\n"
               "  --node-name NAME             node name (default: cnos.node= on the command line, else the hostname)\n"
               "  --role worker|control-plane  (default worker)\n"
               "  --disk-uuid UUID             the state disk's LUKS2 UUID (required)\n"
               "  --tee auto|tpm2|sev-snp|tdx  evidence to present (default auto: TDX, then SEV-SNP, then TPM)\n"
               "  --tcti TCTI                  TPM access (default %s)\n"
               "  --eventlog PATH              firmware event log to send (\"\" for none; default per TEE)\n"
               "  --tsm-path PATH              configfs-tsm report directory (default %s)\n"
               "  --ca FILE                    pin: the service's TLS certificate must chain to this PEM bundle\n"
               "  --require-server-attestation the service must prove itself first, verified against:\n"
               "      --server-manifest FILE --server-manifest-sig FILE --server-manifest-pubkey FILE\n"
               "      --server-ek-ca FILE      (the CA bundle of the service TPM's EK certificate)\n"
               "  --attempts N                 give up after N unreachable attempts (default 0: never)\n"
               "  --initial-backoff DURATION   first wait between attempts (default 1s)\n"
               "  --max-backoff DURATION       longest wait between attempts (default 60s)\n"
               "  --timeout DURATION           connect and each message exchange (default 30s)\n"
               "  -v, --verbose                debug output\n\n"
               "DURATION: N (seconds), Nms, Ns or Nm. Progress goes to stderr; on success the cluster ID\n"
               "(hex) is printed on stdout. Exit status: 0 joined, 1 refused or failed, 2 usage.\n",
               TPM2_TCTI_DEFAULT, ISSUER_TSM_PATH_DEFAULT);
}

static int parse_duration_ms(const char *s, uint32_t *ret) {
        unsigned long long v, mul = 1000;
        char *end;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0)
                return -EINVAL;
        if (strcmp(end, "ms") == 0)
                mul = 1;
        else if (strcmp(end, "s") == 0 || *end == 0)
                mul = 1000;
        else if (strcmp(end, "m") == 0)
                mul = 60000;
        else
                return -EINVAL;
        if (v == 0 || v > UINT32_MAX / mul)
                return -ERANGE;
        *ret = (uint32_t) (v * mul);
        return 0;
}

static bool uuid_is_canonical(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!strchr("0123456789abcdef", s[i]))
                        return false;
        }
        return true;
}

static int parse_args(int argc, char *argv[]) {
        enum {
                ARG_JOIN = 0x100,
                ARG_CMDLINE_FILE,
                ARG_TCTI,
                ARG_TEE,
                ARG_EVENTLOG,
                ARG_TSM_PATH,
                ARG_NODE_NAME,
                ARG_ROLE,
                ARG_DISK_UUID,
                ARG_REQUIRE_SERVER_ATTESTATION,
                ARG_SERVER_MANIFEST,
                ARG_SERVER_MANIFEST_SIG,
                ARG_SERVER_MANIFEST_PUBKEY,
                ARG_SERVER_EK_CA,
                ARG_CA,
                ARG_INITIAL_BACKOFF,
                ARG_MAX_BACKOFF,
                ARG_ATTEMPTS,
                ARG_TIMEOUT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "verbose", no_argument, NULL, 'v' },
                { "join", required_argument, NULL, ARG_JOIN },
                { "cmdline-file", required_argument, NULL, ARG_CMDLINE_FILE },
                { "tcti", required_argument, NULL, ARG_TCTI },
                { "tee", required_argument, NULL, ARG_TEE },
                { "eventlog", required_argument, NULL, ARG_EVENTLOG },
                { "tsm-path", required_argument, NULL, ARG_TSM_PATH },
                { "node-name", required_argument, NULL, ARG_NODE_NAME },
                { "role", required_argument, NULL, ARG_ROLE },
                { "disk-uuid", required_argument, NULL, ARG_DISK_UUID },
                { "require-server-attestation", no_argument, NULL, ARG_REQUIRE_SERVER_ATTESTATION },
                { "server-manifest", required_argument, NULL, ARG_SERVER_MANIFEST },
                { "server-manifest-sig", required_argument, NULL, ARG_SERVER_MANIFEST_SIG },
                { "server-manifest-pubkey", required_argument, NULL, ARG_SERVER_MANIFEST_PUBKEY },
                { "server-ek-ca", required_argument, NULL, ARG_SERVER_EK_CA },
                { "ca", required_argument, NULL, ARG_CA },
                { "initial-backoff", required_argument, NULL, ARG_INITIAL_BACKOFF },
                { "max-backoff", required_argument, NULL, ARG_MAX_BACKOFF },
                { "attempts", required_argument, NULL, ARG_ATTEMPTS },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                {},
        };
        unsigned long ul;
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "hv", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 'v':
                        log_max_level = LOG_LVL_DEBUG;
                        break;
                case ARG_JOIN:
                        arg.join = optarg;
                        break;
                case ARG_CMDLINE_FILE:
                        arg.cmdline_file = optarg;
                        break;
                case ARG_TCTI:
                        arg.tcti = optarg;
                        break;
                case ARG_TEE:
                        arg.tee = optarg;
                        break;
                case ARG_EVENTLOG:
                        arg.eventlog = optarg;
                        break;
                case ARG_TSM_PATH:
                        arg.tsm_path = optarg;
                        break;
                case ARG_NODE_NAME:
                        arg.node_name = optarg;
                        break;
                case ARG_ROLE:
                        arg.role = optarg;
                        break;
                case ARG_DISK_UUID:
                        arg.disk_uuid = optarg;
                        break;
                case ARG_REQUIRE_SERVER_ATTESTATION:
                        arg.require_server_attestation = true;
                        break;
                case ARG_SERVER_MANIFEST:
                        arg.server_manifest = optarg;
                        break;
                case ARG_SERVER_MANIFEST_SIG:
                        arg.server_manifest_sig = optarg;
                        break;
                case ARG_SERVER_MANIFEST_PUBKEY:
                        arg.server_manifest_pubkey = optarg;
                        break;
                case ARG_SERVER_EK_CA:
                        arg.server_ek_ca = optarg;
                        break;
                case ARG_CA:
                        arg.ca = optarg;
                        break;
                case ARG_INITIAL_BACKOFF:
                        if (parse_duration_ms(optarg, &arg.initial_backoff_ms) < 0)
                                return log_error_errno(-EINVAL, "--initial-backoff: \"%s\" is not a positive duration", optarg);
                        break;
                case ARG_MAX_BACKOFF:
                        if (parse_duration_ms(optarg, &arg.max_backoff_ms) < 0)
                                return log_error_errno(-EINVAL, "--max-backoff: \"%s\" is not a positive duration", optarg);
                        break;
                case ARG_TIMEOUT:
                        if (parse_duration_ms(optarg, &arg.timeout_ms) < 0 || arg.timeout_ms > INT_MAX)
                                return log_error_errno(-EINVAL, "--timeout: \"%s\" is not a positive duration", optarg);
                        break;
                case ARG_ATTEMPTS:
                        errno = 0;
                        ul = strtoul(optarg, &end, 10);
                        if (errno != 0 || end == optarg || *end || !isdigit((unsigned char) *optarg) || ul > UINT_MAX)
                                return log_error_errno(-EINVAL, "--attempts: \"%s\" is not a number", optarg);
                        arg.attempts = (unsigned) ul;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return log_error_errno(-EINVAL, "unhandled option");
                }
        }
        if (optind < argc)
                return log_error_errno(-EINVAL, "unexpected argument \"%s\"", argv[optind]);
        return 1;
}

/* The hostname as a node name: lowercased, as Kubernetes does. */
static int node_name_from_hostname(char **ret) {
        char buf[HOST_NAME_MAX + 1] = {};

        if (gethostname(buf, sizeof(buf) - 1) < 0)
                return negative_errno();
        for (char *p = buf; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* Everything the join needs, from the options and the kernel command line. Failures here are usage
 * errors (exit status 2). */
struct setup {
        char *join, *node;
        struct server_policy *policy;
};

static void setup_done(struct setup *s) {
        free(s->join);
        free(s->node);
        server_policy_free(s->policy);
}

static int setup(struct join_config *ret, struct setup *s) {
        struct join_config c = {};
        struct cnos_err e = {};
        int r;

        if (!arg.join) {
                r = cmdline_read_key(arg.cmdline_file, CMDLINE_JOIN_KEY, &s->join);
                if (r == -ENOENT || r == -ENODATA || (r >= 0 && !*s->join))
                        return log_error_errno(-EINVAL, "no join service: neither --join nor " CMDLINE_JOIN_KEY "=HOST:PORT on the kernel command line (%s)",
                                               arg.cmdline_file ? arg.cmdline_file : CMDLINE_PATH_DEFAULT);
                if (r < 0)
                        return log_error_errno(r, "reading %s: %m", arg.cmdline_file ? arg.cmdline_file : CMDLINE_PATH_DEFAULT);
                log_info("join service %s (from the kernel command line)", s->join);
        }
        if (!arg.node_name) {
                r = cmdline_read_key(arg.cmdline_file, CMDLINE_NODE_KEY, &s->node);
                if (r == -ENOENT || r == -ENODATA || (r >= 0 && !*s->node)) {
                        free(s->node);
                        s->node = NULL;
                        r = node_name_from_hostname(&s->node);
                        if (r < 0)
                                return log_error_errno(r, "cannot read the hostname: %m");
                } else if (r < 0)
                        return log_error_errno(r, "reading %s: %m", arg.cmdline_file ? arg.cmdline_file : CMDLINE_PATH_DEFAULT);
        }

        c.endpoint = arg.join ? arg.join : s->join;
        c.node_name = arg.node_name ? arg.node_name : s->node;
        if (!node_name_is_valid(c.node_name))
                return log_error_errno(-EINVAL, "node name \"%s\" is not [a-z0-9.-]{1,63}; set --node-name or " CMDLINE_NODE_KEY "=",
                                       c.node_name);

        if (!arg.disk_uuid)
                return log_error_errno(-EINVAL, "--disk-uuid is required");
        if (!uuid_is_canonical(arg.disk_uuid))
                return log_error_errno(-EINVAL, "--disk-uuid: \"%s\" is not a lowercase canonical UUID", arg.disk_uuid);
        c.disk_uuid = arg.disk_uuid;

        if (strcmp(arg.role, "worker") == 0)
                c.role = CNOS__JOIN__ROLE__ROLE_WORKER;
        else if (strcmp(arg.role, "control-plane") == 0)
                c.role = CNOS__JOIN__ROLE__ROLE_CONTROL_PLANE;
        else
                return log_error_errno(-EINVAL, "--role: \"%s\" is neither worker nor control-plane", arg.role);

        if (arg.tee && issuer_tee_from_string(arg.tee, &c.issuer.tee) < 0)
                return log_error_errno(-EINVAL, "--tee: \"%s\" is not auto, tpm2, sev-snp or tdx", arg.tee);
        c.issuer.tcti = arg.tcti;
        c.issuer.eventlog_path = arg.eventlog;
        c.issuer.tsm_path = arg.tsm_path;

        if (arg.require_server_attestation) {
                r = server_policy_load(arg.server_manifest, arg.server_manifest_sig, arg.server_manifest_pubkey, arg.server_ek_ca,
                                       &s->policy, &e);
                if (r < 0)
                        return log_error_errno(r, "mutual attestation: %s", cnos_err_msg(&e));
                c.server_policy = &s->policy->policy;
        } else if (arg.server_manifest || arg.server_manifest_sig || arg.server_manifest_pubkey || arg.server_ek_ca)
                return log_error_errno(-EINVAL, "--server-* options need --require-server-attestation");

        c.ca_path = arg.ca;
        c.backoff = (struct backoff) { .initial_ms = MIN(arg.initial_backoff_ms, arg.max_backoff_ms), .max_ms = arg.max_backoff_ms };
        c.attempts = arg.attempts;
        c.timeout_ms = arg.timeout_ms;
        *ret = c;
        return 0;
}

static int run(const struct join_config *c) {
        _cleanup_ticket_ struct join_ticket *ticket = NULL;
        char id[JOIN_CLUSTER_ID_SIZE * 2 + 1];
        int r;

        log_info("joining as node %s (%s), disk %s, via %s%s", c->node_name, arg.role, c->disk_uuid, c->endpoint,
                 c->server_policy ? ", service must attest" : "");
        r = joinclient_run(c, &ticket);
        if (r < 0)
                return r; /* logged */

        /* The ticket stays in locked memory and is wiped on exit: the later steps (state disk, PCR
         * 15, handoff) are not part of this program yet, so nothing of it is written anywhere. */
        printf("%s\n", hex_encode(ticket->cluster_id, JOIN_CLUSTER_ID_SIZE, id));
        log_info("joined cluster %s", id);
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(setup_done) struct setup s = {};
        struct join_config c;
        int r;

        /* Secrets are about to live in this process: no core dumps, no ptrace by other users. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

        r = parse_args(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        /* tss2 logs its own errors to stderr; ours say the same in one line. TSS2_LOG still wins. */
        if (setenv("TSS2_LOG", log_max_level >= LOG_LVL_DEBUG ? "all+warning" : "all+none", 0) < 0) {
                log_oom();
                return 1;
        }

        if (CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, SECURE_HEAP_MIN) != 1)
                log_warning("OpenSSL secure heap unavailable (RLIMIT_MEMLOCK?): the kubelet key lives in ordinary memory");

        r = setup(&c, &s);
        if (r < 0)
                return 2;
        r = run(&c);
        return r < 0 ? 1 : 0;
}
