/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cnos-bootstrapper: the node's program in the initrd. Join the cluster - attest to the join service
 * over attested TLS and receive the ticket (disk key, cluster ID, kubelet credentials) - and, with a
 * state disk, open (or first format) it, bind the node to the cluster in PCR 15 and hand off to
 * kubelet: credentials onto the state disk, components downloaded and checked against their pins.
 * The ticket lives in locked memory only. */

#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <sys/prctl.h>

#include "attestation/tpm2.h"
#include "cmdline.h"
#include "components.h"
#include "csr.h"
#include "fileio.h"
#include "handoff.h"
#include "hex.h"
#include "joinclient.h"
#include "log.h"
#include "protocol/protocol.h"
#include "serverpolicy.h"
#include "statedisk.h"
#include "statefs.h"

#define CMDLINE_JOIN_KEY "cnos.join"
#define CMDLINE_NODE_KEY "cnos.node"
#define CMDLINE_STATE_KEY "cnos.state"
#define CMDLINE_INTEGRITY_KEY "cnos.state_integrity"
#define DHCP_LEASES_DEFAULT "/run/systemd/netif/leases"
#define STATE_MOUNT_DEFAULT "/sysroot/var"
#define COMPONENTS_SUBDIR "/lib/cnos/components"
/* OpenSSL's secure heap (mlock()ed, never dumped) for the kubelet key's private scalar. */
#define SECURE_HEAP_SIZE (64 * 1024)
#define SECURE_HEAP_MIN 32

static struct {
        const char *join;
        const char *cmdline_file;
        const char *dhcp_leases;
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
        const char *state_disk;
        const char *state_mount;
        const char *components_root;
        bool integrity;
} arg = {
        .role = "worker",
        .dhcp_leases = DHCP_LEASES_DEFAULT,
        .initial_backoff_ms = BACKOFF_INITIAL_MS_DEFAULT,
        .max_backoff_ms = BACKOFF_MAX_MS_DEFAULT,
        .timeout_ms = JOIN_TIMEOUT_MS_DEFAULT,
};

static void help(void) {
        printf("Usage: cnos-bootstrapper [OPTIONS]\n"
               "Joins this node to its cluster: attests to the join service and receives the ticket.\n\n"
               "  --join HOST:PORT             join service (default: cnos.join= on the kernel command line)\n"
               "  --cmdline-file PATH          read the kernel command line from PATH (default /proc/cmdline)\n"
               "  --node-name NAME             node name (default: cnos.node= on the command line, else the hostname,\n"
               "                               else the host name in a DHCP lease, else from the state disk's UUID)\n"
               "  --dhcp-leases DIR            systemd-networkd's DHCP leases (default " DHCP_LEASES_DEFAULT ")\n"
               "  --role worker|control-plane  (default worker)\n"
               "  --disk-uuid UUID             join only: the state disk's LUKS2 UUID (without --state-disk)\n"
               "  --state-disk PATH            the state disk (default: cnos.state= on the command line); never guessed\n"
               "  --state-mount DIR            where to mount it (default " STATE_MOUNT_DEFAULT ")\n"
               "  --integrity                  the state disk has (or gets) hmac(sha256) integrity (default:\n"
               "                               cnos.state_integrity=hmac-sha256|none on the command line; none)\n"
               "  --components-root DIR        install components under DIR (default <state-mount>" COMPONENTS_SUBDIR ")\n"
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
               "(hex) is printed on stdout. Exit status: 0 joined (and, with a state disk, handed off),\n"
               "1 refused or failed, 2 usage.\n",
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

static int parse_args(int argc, char *argv[]) {
        enum {
                ARG_JOIN = 0x100,
                ARG_CMDLINE_FILE,
                ARG_DHCP_LEASES,
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
                ARG_STATE_DISK,
                ARG_STATE_MOUNT,
                ARG_INTEGRITY,
                ARG_COMPONENTS_ROOT,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "verbose", no_argument, NULL, 'v' },
                { "join", required_argument, NULL, ARG_JOIN },
                { "cmdline-file", required_argument, NULL, ARG_CMDLINE_FILE },
                { "dhcp-leases", required_argument, NULL, ARG_DHCP_LEASES },
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
                { "state-disk", required_argument, NULL, ARG_STATE_DISK },
                { "state-mount", required_argument, NULL, ARG_STATE_MOUNT },
                { "integrity", no_argument, NULL, ARG_INTEGRITY },
                { "components-root", required_argument, NULL, ARG_COMPONENTS_ROOT },
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
                case ARG_DHCP_LEASES:
                        arg.dhcp_leases = optarg;
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
                case ARG_STATE_DISK:
                        arg.state_disk = optarg;
                        break;
                case ARG_STATE_MOUNT:
                        arg.state_mount = optarg;
                        break;
                case ARG_INTEGRITY:
                        arg.integrity = true;
                        break;
                case ARG_COMPONENTS_ROOT:
                        arg.components_root = optarg;
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

/* The hostname as a node name: lowercased, as Kubernetes does. A placeholder hostname (none was
 * configured or handed out) yields NULL: with a state disk the name is then derived from the disk's
 * UUID (node_name_from_disk), which is stable across reboots and distinct per node. */
static int node_name_from_hostname(char **ret) {
        char buf[HOST_NAME_MAX + 1] = {};

        if (gethostname(buf, sizeof(buf) - 1) < 0)
                return negative_errno();
        for (char *p = buf; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        if (!*buf || strcmp(buf, "localhost") == 0 || strcmp(buf, "localhost.localdomain") == 0 || strcmp(buf, "(none)") == 0) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* The host name the DHCP server handed out (option 12), from systemd-networkd's lease files: the
 * initrd has no D-Bus, so networkd cannot make it the hostname itself. Clouds name instances so,
 * and `cnos cluster create` names its VMs so (QEMU's user network). The first valid name of the
 * leases in name order; NULL when there is none. */
static int node_name_from_dhcp(const char *leases_dir, char **ret) {
        struct dirent **names = NULL;
        int n, r = 0;

        *ret = NULL;
        n = scandir(leases_dir, &names, NULL, alphasort);
        if (n < 0)
                return errno == ENOENT ? 0 : negative_errno();
        for (int i = 0; i < n && !*ret && r == 0; i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_free_ uint8_t *text = NULL;
                size_t size = 0;

                if (names[i]->d_name[0] == '.' || asprintf(&path, "%s/%s", leases_dir, names[i]->d_name) < 0 ||
                    read_file(path, 64U * 1024U, &text, &size) < 0)
                        continue;
                for (char *line = (char *) text, *next; line && *line; line = next) {
                        next = strchr(line, '\n');
                        if (next)
                                *next++ = 0;
                        if (strncmp(line, "HOSTNAME=", 9) != 0)
                                continue;
                        for (char *p = line + 9; *p; p++)
                                *p = (char) tolower((unsigned char) *p);
                        if (node_name_is_valid(line + 9) && !(*ret = strdup(line + 9)))
                                r = -ENOMEM;
                        break;
                }
        }
        for (int i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return r;
}

/* "node-" and the disk UUID's first 8 hex digits. */
static void node_name_from_disk(const char *uuid, char ret[static 14]) {
        snprintf(ret, 14, "node-%.8s", uuid);
}

/* Everything the join needs, from the options and the kernel command line. Failures here are usage
 * errors (exit status 2). */
struct setup {
        char *join, *node, *state_disk;
        struct server_policy *policy;
};

static void setup_done(struct setup *s) {
        free(s->join);
        free(s->node);
        free(s->state_disk);
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
                        if (!s->node) {
                                r = node_name_from_dhcp(arg.dhcp_leases, &s->node);
                                if (r < 0)
                                        return log_error_errno(r, "cannot read the DHCP leases in %s: %m", arg.dhcp_leases);
                                if (s->node)
                                        log_info("node name %s (the host name DHCP handed out)", s->node);
                        }
                } else if (r < 0)
                        return log_error_errno(r, "reading %s: %m", arg.cmdline_file ? arg.cmdline_file : CMDLINE_PATH_DEFAULT);
        }

        c.endpoint = arg.join ? arg.join : s->join;
        c.node_name = arg.node_name ? arg.node_name : s->node;
        if (c.node_name && !node_name_is_valid(c.node_name))
                return log_error_errno(-EINVAL, "node name \"%s\" is not [a-z0-9.-]{1,63}; set --node-name or " CMDLINE_NODE_KEY "=",
                                       c.node_name);

        if (!arg.state_disk && !arg.disk_uuid) {
                r = cmdline_read_key(arg.cmdline_file, CMDLINE_STATE_KEY, &s->state_disk);
                if (r >= 0 && !*s->state_disk)
                        return log_error_errno(-EINVAL, CMDLINE_STATE_KEY "= is empty");
                if (r < 0 && r != -ENOENT && r != -ENODATA)
                        return log_error_errno(r, "reading %s: %m", arg.cmdline_file ? arg.cmdline_file : CMDLINE_PATH_DEFAULT);
                if (r >= 0)
                        log_info("state disk %s (from the kernel command line)", s->state_disk);
        }
        if (arg.state_disk || s->state_disk) {
                const char *d = arg.state_disk ? arg.state_disk : s->state_disk;

                /* Integrity is the image's choice: on its (measured) command line. A disk formatted
                 * otherwise is refused, never converted (luks2meta). */
                if (!arg.integrity) {
                        _cleanup_free_ char *v = NULL;

                        r = cmdline_read_key(arg.cmdline_file, CMDLINE_INTEGRITY_KEY, &v);
                        if (r < 0 && r != -ENOENT && r != -ENODATA)
                                return log_error_errno(r, "reading %s: %m", arg.cmdline_file ? arg.cmdline_file : CMDLINE_PATH_DEFAULT);
                        if (r == -ENODATA || (r >= 0 && strcmp(v, "hmac-sha256") != 0 && strcmp(v, "none") != 0))
                                return log_error_errno(-EINVAL, CMDLINE_INTEGRITY_KEY "=%s: neither hmac-sha256 nor none", v ? v : "");
                        arg.integrity = r >= 0 && strcmp(v, "hmac-sha256") == 0;
                        if (arg.integrity)
                                log_info("state disk integrity hmac(sha256) (from the kernel command line)");
                }

                /* Named, never guessed: an absolute path, a device node in the initrd. */
                if (d[0] != '/')
                        return log_error_errno(-EINVAL, "state disk \"%s\" is not an absolute path", d);
                if (arg.disk_uuid)
                        return log_error_errno(-EINVAL, "--disk-uuid and a state disk exclude each other: the UUID comes from the disk");
                if (arg.state_mount && arg.state_mount[0] != '/')
                        return log_error_errno(-EINVAL, "--state-mount \"%s\" is not an absolute path", arg.state_mount);
                if (arg.components_root && arg.components_root[0] != '/')
                        return log_error_errno(-EINVAL, "--components-root \"%s\" is not an absolute path", arg.components_root);
        } else {
                if (arg.state_mount || arg.components_root || arg.integrity)
                        return log_error_errno(-EINVAL, "--state-mount, --components-root and --integrity need a state disk");
                if (!arg.disk_uuid)
                        return log_error_errno(-EINVAL, "--disk-uuid is required (or a state disk: --state-disk, " CMDLINE_STATE_KEY "=)");
                if (!statedisk_uuid_is_canonical(arg.disk_uuid))
                        return log_error_errno(-EINVAL, "--disk-uuid: \"%s\" is not a lowercase canonical UUID", arg.disk_uuid);
                c.disk_uuid = arg.disk_uuid;
                if (!c.node_name)
                        return log_error_errno(-EINVAL, "no node name: the hostname is a placeholder; set --node-name or " CMDLINE_NODE_KEY "=");
        }

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

/* Seconds since the kernel started, suspend included: where in the whole boot the handoff falls. */
static double boottime_s(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_BOOTTIME, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int join(const struct join_config *c, struct join_ticket **ret, struct join_stats *stats) {
        log_info("joining as node %s (%s), disk %s (%s), via %s%s", c->node_name, arg.role, c->disk_uuid ? c->disk_uuid : "-",
                 proto_disk_state_name(c->disk_state), c->endpoint, c->server_policy ? ", service must attest" : "");
        return joinclient_run_stats(c, ret, stats); /* logged */
}

static int run_join_only(struct join_config *c) {
        _cleanup_ticket_ struct join_ticket *ticket = NULL;
        char id[JOIN_CLUSTER_ID_SIZE * 2 + 1];
        int r;

        c->disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_NONE;
        r = join(c, &ticket, NULL);
        if (r < 0)
                return r;
        /* Without a state disk nothing of the ticket is written anywhere; it is wiped on exit. */
        printf("%s\n", hex_encode(ticket->cluster_id, JOIN_CLUSTER_ID_SIZE, id));
        log_info("joined cluster %s", id);
        return 0;
}

/* PCR 15 <- the cluster ID. A TPM named by --tee tpm2 must take it; with --tee auto a machine without
 * a TPM (SNP, TDX) says so and goes on: its evidence has no PCR 15 to replay. */
static int bind_cluster(const struct join_config *c, const uint8_t *cluster_id) {
        _cleanup_tpm2_ struct tpm2 *t = NULL;
        struct cnos_err e = {};
        int r;

        if (c->issuer.tee == CNOS__JOIN__TEE__TEE_SEV_SNP || c->issuer.tee == CNOS__JOIN__TEE__TEE_TDX) {
                log_warning("PCR 15: not extended (%s evidence carries no TPM PCRs)", issuer_tee_to_string(c->issuer.tee));
                return 0;
        }
        r = tpm2_open(c->issuer.tcti, &t, &e);
        if (r < 0) {
                /* auto: the join then used SNP or TDX evidence, which has no PCR 15 */
                if (c->issuer.tee == CNOS__JOIN__TEE__TEE_UNSPECIFIED) {
                        log_warning("PCR 15: no TPM (%s); the node is not bound in PCR 15", cnos_err_msg(&e));
                        return 0;
                }
                return log_error_errno(r, "PCR 15: %s", cnos_err_msg(&e));
        }
        r = tpm2_extend_pcr15(t, cluster_id, &e);
        if (r < 0)
                return log_error_errno(r, "PCR 15: %s", cnos_err_msg(&e));
        log_info("PCR 15 extended with the cluster ID: this boot is bound to the cluster");
        return 0;
}

/* The disk was refused (`why`, `r`): it is never touched, but the node still attests and tells the
 * service, so that the refusal and its reason reach the cluster's audit log. Then it stops with `r`
 * whatever the service answers. */
static int report_unusable(struct join_config *c, const char *why, int r) {
        _cleanup_ticket_ struct join_ticket *ticket = NULL;
        char reason[CNOS_DISK_REASON_MAX + 1], uuid[STATEDISK_UUID_LEN + 1], name[14];
        int k;

        c->disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_UNUSABLE;
        c->disk_reason = proto_printable(why, reason, sizeof(reason));
        c->disk_uuid = NULL;
        if (!c->node_name) {
                /* no disk UUID to name the node after: a random one, for this report only */
                if (statedisk_uuid_generate(uuid) < 0)
                        return log_error_errno(r, "cannot generate a node name; stopping");
                node_name_from_disk(uuid, name);
                c->node_name = name;
                log_info("node name %s (random: the hostname is a placeholder and the state disk has no UUID)", name);
        }
        k = join(c, &ticket, NULL);
        if (c->node_name == name)
                c->node_name = NULL; /* this frame's */
        if (k >= 0)
                log_error("the join service accepted a node with an unusable state disk; stopping anyway");
        return log_error_errno(r, "stopping: the state disk is unusable, and was not touched");
}

static int run_state(struct join_config *c, const char *disk) {
        const struct statedisk_options opts = { .integrity = arg.integrity };
        _cleanup_ticket_ struct join_ticket *ticket = NULL;
        _cleanup_free_ char *components_root = NULL;
        const char *mount_dir = arg.state_mount ? arg.state_mount : STATE_MOUNT_DEFAULT;
        char id[JOIN_CLUSTER_ID_SIZE * 2 + 1], uuid[STATEDISK_UUID_LEN + 1], dev[PATH_MAX], derived_name[14];
        struct components_options co = {};
        struct statedisk_info info = {};
        enum statefs_state fs;
        struct cnos_err e = {};
        struct join_stats js = {};
        char machine_id[33];
        uint64_t t0, t_probe, t_join, t_step, t_disk, t_bind, t_handoff;
        int r;

        t0 = joinclient_now_ms();
        /* 1. what the disk is, before anything is sent or written */
        r = statedisk_probe(disk, &opts, &info, &e);
        if (r < 0) {
                log_error_errno(r, "state disk refused, not touched: %s", cnos_err_msg(&e));
                return report_unusable(c, cnos_err_msg(&e), r);
        }
        if (info.state == STATEDISK_BLANK) {
                r = statedisk_uuid_generate(uuid);
                if (r < 0)
                        return log_error_errno(r, "cannot generate a disk UUID: %m");
                log_info("state disk %s: blank%s (%" PRIu64 " MiB); first boot, new disk UUID %s", disk,
                         info.interrupted ? " - an earlier first boot stopped before its key was set" : "", info.size >> 20, uuid);
                c->disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_BLANK;
        } else {
                memcpy(uuid, info.uuid, sizeof(uuid));
                c->disk_state = CNOS__JOIN__DISK_STATE__DISK_STATE_CNOS;
                c->disk_key_check = info.key_check;
                log_info("state disk %s: LUKS2, %s, header valid, UUID %s", disk, statedisk_state_to_string(info.state), uuid);
        }
        c->disk_uuid = uuid;
        t_probe = joinclient_now_ms();
        if (!c->node_name) {
                node_name_from_disk(uuid, derived_name);
                c->node_name = derived_name;
                log_info("node name %s (from the disk UUID: the hostname is a placeholder)", derived_name);
        }

        /* 2. join for that UUID: the key comes back for it */
        r = join(c, &ticket, &js);
        if (r < 0)
                return r;
        t_join = joinclient_now_ms();

        /* 3. the disk: format a blank one, open, finish an interrupted first boot */
        t_step = t_join;
        if (info.state == STATEDISK_BLANK) {
                r = statedisk_format(disk, uuid, ticket->disk_key, JOIN_DISK_KEY_SIZE, &opts, &e);
                if (r < 0)
                        return log_error_errno(r, "state disk: %s", cnos_err_msg(&e));
                log_info("state disk %s: formatted LUKS2 (aes-xts-plain64, 4096-byte sectors%s) in %" PRIu64 " ms", disk,
                         arg.integrity ? ", hmac(sha256) integrity" : "", joinclient_now_ms() - t_step);
                info.state = STATEDISK_INITIALISING;
        }
        t_step = joinclient_now_ms();
        r = statedisk_activate(disk, STATEDISK_MAPPER_NAME, uuid, ticket->disk_key, JOIN_DISK_KEY_SIZE, &opts,
                               info.state == STATEDISK_INITIALISING, &e);
        if (r < 0)
                return log_error_errno(r, "state disk not opened: %s", cnos_err_msg(&e));
        log_info("state disk opened in %" PRIu64 " ms%s", joinclient_now_ms() - t_step,
                 arg.integrity && info.state == STATEDISK_INITIALISING ? " (integrity tags initialised: every sector written once)" : "");
        (void) snprintf(dev, sizeof(dev), "/dev/mapper/%s", STATEDISK_MAPPER_NAME);
        r = statefs_probe(dev, &fs, &e);
        if (r < 0)
                return log_error_errno(r, "state disk: %s", cnos_err_msg(&e));
        if (info.state == STATEDISK_INITIALISING) {
                if (fs == STATEFS_USED)
                        return log_error_errno(-EEXIST, "state disk: marked initialising but holds %s; refusing to format it",
                                               statefs_state_to_string(fs));
                if (fs == STATEFS_NONE) {
                        t_step = joinclient_now_ms();
                        r = statefs_mkfs(dev, NULL, &e);
                        if (r < 0)
                                return log_error_errno(r, "state disk: %s", cnos_err_msg(&e));
                        log_info("state disk: ext4 created in %" PRIu64 " ms", joinclient_now_ms() - t_step);
                }
                r = statedisk_mark_ready(disk, uuid, &opts, &e);
                if (r < 0)
                        return log_error_errno(r, "state disk: %s", cnos_err_msg(&e));
                log_info("state disk: ready");
        } else if (fs == STATEFS_NONE)
                return log_error_errno(-EIO, "state disk: ready, but the opened volume holds no ext4; refusing to format it");
        r = statefs_mount(dev, mount_dir, &e);
        if (r < 0)
                return log_error_errno(r, "state disk: %s", cnos_err_msg(&e));
        log_info("state disk mounted on %s", mount_dir);
        t_disk = joinclient_now_ms();

        /* 4. PCR 15 */
        r = bind_cluster(c, ticket->cluster_id);
        if (r < 0)
                return r;
        t_bind = joinclient_now_ms();

        /* 5. handoff */
        r = handoff_write(mount_dir, ticket, &e);
        if (r < 0)
                return log_error_errno(r, "handoff: %s", cnos_err_msg(&e));
        log_info("handoff: kubelet credentials in %s/" HANDOFF_DIR, mount_dir);
        r = handoff_machine_id(mount_dir, machine_id, &e);
        if (r < 0)
                return log_error_errno(r, "handoff: %s", cnos_err_msg(&e));
        explicit_bzero(machine_id, sizeof(machine_id)); /* not logged: systemd treats it as confidential */
        log_info("handoff: the node's machine ID is on the state disk (" HANDOFF_MACHINE_ID_PATH ")");
        if (arg.components_root)
                components_root = strdup(arg.components_root);
        else if (asprintf(&components_root, "%s" COMPONENTS_SUBDIR, mount_dir) < 0)
                components_root = NULL;
        if (!components_root)
                return log_oom();
        co.root = components_root;
        if (ticket->n_components > 0) {
                if (strncmp(components_root, mount_dir, strlen(mount_dir)) == 0) {
                        /* <mount>/lib/cnos/components: its parents below the mount first (a fresh
                         * state disk has none of them) */
                        _cleanup_free_ char *p = strdup(components_root);

                        if (!p)
                                return log_oom();
                        for (char *q = p + strlen(mount_dir) + 1; (q = strchr(q, '/')); q++) {
                                *q = 0;
                                (void) mkdir(p, 0755);
                                *q = '/';
                        }
                }
                r = mkdir(components_root, 0755) < 0 && errno != EEXIST ? negative_errno() : 0;
                if (r < 0)
                        return log_error_errno(r, "components: mkdir %s: %m", components_root);
        }
        r = components_install(ticket, &co, &e);
        if (r < 0)
                return log_error_errno(r, "components: %s", cnos_err_msg(&e));
        for (size_t i = 0; i < ticket->n_components; i++)
                log_info("component %s installed at %s%s (sha256 verified)", ticket->components[i].url, components_root,
                         ticket->components[i].install_path);
        t_handoff = joinclient_now_ms();

        printf("%s\n", hex_encode(ticket->cluster_id, JOIN_CLUSTER_ID_SIZE, id));
        /* One line with where the time went; "join" is the rest of the join after the evidence:
         * TLS, the service's verdict, the credential round trip, the ticket, and any backoff. */
        log_info("handed off: cluster %s; %" PRIu64 " ms in all: probe %" PRIu64 " ms, evidence %" PRIu64 " ms, join %" PRIu64
                 " ms (%u attempt(s), %" PRIu64 " ms backoff), disk %" PRIu64 " ms, bind %" PRIu64 " ms, handoff %" PRIu64
                 " ms; done %.1f s after the kernel started", id, t_handoff - t0, t_probe - t0, js.evidence_ms,
                 (t_join - t_probe) - MIN(js.evidence_ms, t_join - t_probe), js.attempts, js.waited_ms, t_disk - t_join,
                 t_bind - t_disk, t_handoff - t_bind, boottime_s());
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
        if (arg.state_disk || s.state_disk)
                r = run_state(&c, arg.state_disk ? arg.state_disk : s.state_disk);
        else
                r = run_join_only(&c);
        return r < 0 ? 1 : 0;
}
