/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* cnos cluster create|status|destroy: a local cluster of node VMs (QEMU + OVMF + swtpm) joining a
 * cnos-joind on this host. The cluster lives in one directory (DIR): the operator's secrets and keys,
 * the processes' logs and pid files, one folder per node, and DIR/cluster.json, which is all that
 * `status` and `destroy` read.
 *
 *   cluster.c           the verbs (composition: options, order of steps, output)
 *   cluster-progress.c  a node's boot state, read from its serial console
 *   cluster-state.c     DIR/cluster.json, and whether a recorded pid is still the process we started
 *   cluster-pki.c       the master secret, the manifest signing key and signature, the cluster CA
 *   cluster-proc.c      starting and stopping the processes */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "macro.h"

#define CLUSTER_MARKER ".cnos-cluster"
#define CLUSTER_STATE_FILE "cluster.json"
#define CLUSTER_STATE_VERSION 1
#define CLUSTER_NODES_MAX 16
#define CLUSTER_NAME_MAX 32

/* ---- a node's boot, as its console shows it (cluster-progress.c) ---------------------------- */

/* In boot order; a node only moves forward. */
enum node_state {
        NODE_FIRMWARE,  /* QEMU started: OVMF, then the kernel */
        NODE_INITRD,    /* systemd runs in the initrd; cnos-bootstrapper starts */
        NODE_ATTESTED,  /* the join service accepted the evidence and sent the ticket */
        NODE_DISK_OPEN, /* the state disk is open (formatted on first boot) and mounted */
        NODE_BOUND,     /* PCR 15 extended with the cluster ID */
        NODE_KUBELET,   /* kubelet (today: the kubelet STAND-IN) started and accepted its credentials */
        _NODE_STATE_MAX,
};

const char *node_state_to_string(enum node_state s);
int node_state_from_string(const char *s); /* -EINVAL if unknown */

#define NODE_REASON_MAX 256

struct node_progress {
        enum node_state state;
        bool failed;
        char reason[NODE_REASON_MAX]; /* the console line that said why, when failed */
};

/* Feeds one console line (CR and terminal escapes already removed). Returns 1 when the state moved
 * forward or the node failed with this line, 0 otherwise. */
int node_progress_feed(struct node_progress *p, const char *line);

/* Removes CRs and ANSI escape sequences in place (the serial console is a terminal). */
void console_clean_line(char *line);
/* systemd's "A start job is running" / "Job ... running" spinner lines: noise in a tail. */
bool console_line_is_noise(const char *line);

/* Follows a growing console log: each poll reads what was appended and feeds whole lines. */
struct console_reader {
        off_t offset;
        size_t n;          /* bytes of an unfinished line in buf */
        char buf[4096];    /* a longer line is fed in pieces */
};

/* Returns 1 if the progress changed, 0 if not, negative errno if the file cannot be read (a file
 * that does not exist yet is not an error). */
_warn_unused_result_ int console_reader_poll(struct console_reader *r, const char *path, struct node_progress *p);

/* The last n lines of a console log that are not noise, cleaned, as one string ("" if none). */
_warn_unused_result_ int console_tail(const char *path, unsigned n, char **ret);

/* ---- DIR/cluster.json (cluster-state.c) -------------------------------------------------------- */

/* A process this cluster started: its pid, its start time (field 22 of /proc/PID/stat, so a reused
 * pid is never mistaken for it) and the executable's name. */
struct cluster_proc {
        pid_t pid;
        uint64_t start;
        char exe[32];
};

struct cluster_node {
        char name[CLUSTER_NAME_MAX];
        struct cluster_proc qemu, swtpm;
};

struct cluster {
        char *dir;          /* absolute */
        char *provider;     /* "qemu" */
        char *image;        /* the disk image the nodes boot (read-only) */
        char *api_endpoint;
        char *kubelet_sha256;
        bool kubelet_standin;
        unsigned joind_port, http_port;
        struct cluster_proc joind, http;
        size_t n_nodes;
        struct cluster_node nodes[CLUSTER_NODES_MAX];
};

void cluster_free(struct cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct cluster *, cluster_free);

bool cluster_node_name_valid(const char *name);

_warn_unused_result_ int cluster_to_json(const struct cluster *c, struct json_object **ret);
_warn_unused_result_ int cluster_from_json(const char *text, struct cluster **ret, struct cnos_err *e);
/* Writes DIR/cluster.json atomically (temporary file + rename). */
_warn_unused_result_ int cluster_save(const struct cluster *c, struct cnos_err *e);
/* Reads DIR/cluster.json; -ENOTDIR-style refusals say why DIR is not a cluster directory. */
_warn_unused_result_ int cluster_load(const char *dir, struct cluster **ret, struct cnos_err *e);

/* ---- processes (cluster-proc.c) ---------------------------------------------------------------- */

/* Field 22 of /proc/PID/stat; -ESRCH if gone or a zombie. */
_warn_unused_result_ int proc_start_time(pid_t pid, uint64_t *ret);
/* true if the pid is alive and started at p->start (it may still be on its way to exec p->exe: a
 * wrapper such as a pyenv shim execs the real program under the same pid) */
bool proc_alive(const struct cluster_proc *p);
/* true if the pid is alive, started at p->start, and runs p->exe (python3 matches python3.11). */
bool proc_is(const struct cluster_proc *p);
bool proc_exe_matches(const char *exe_path, const char *expected);

struct spawn {
        const char *const *argv;
        const char *log;      /* stdout + stderr appended here; NULL: inherit */
        const char *exe_name; /* what /proc/PID/exe must be called, for the record */
        bool own_session;     /* setsid(): outlives the command, deaf to the terminal's ^C */
};
_warn_unused_result_ int proc_spawn(const struct spawn *s, struct cluster_proc *ret);
/* Runs argv to completion (stdout + stderr to log, or inherited); returns its exit status. */
_warn_unused_result_ int proc_run(const char *const *argv, const char *log);

/* Stops what c records: QEMU first (ACPI power button on the monitor, grace_s, then SIGKILL), then
 * swtpm, cnos-joind and the HTTP server (SIGTERM, then SIGKILL). A pid that no longer belongs to the
 * process we started is left alone. Returns 0 when nothing of the cluster is left running.
 * our_children: the caller started them and has not reaped them, so their pids cannot have been
 * reused and a process still on its way to exec its program is stopped too. */
_warn_unused_result_ int cluster_stop(const struct cluster *c, unsigned grace_s, bool our_children, bool verbose);

/* ---- key material (cluster-pki.c) -------------------------------------------------------------- */

/* DIR/master.secret (0600, O_EXCL): `master-secret = HEX` and `salt = HEX`, 32 random bytes each.
 * The secret exists only in locked memory and in that file. */
_warn_unused_result_ int pki_master_secret(const char *dir, struct cnos_err *e);
/* DIR/manifest.key (0600) + manifest.pub: ECDSA P-256; DIR/measurements.json copied from manifest
 * and signed into DIR/measurements.json.sig (the format of `cnos-measure sign`). */
_warn_unused_result_ int pki_sign_manifest(const char *dir, const char *manifest, struct cnos_err *e);
/* DIR/ca.key (0600) + DIR/ca.pem: the cluster CA that signs the nodes' kubelet certificates. */
_warn_unused_result_ int pki_cluster_ca(const char *dir, struct cnos_err *e);
/* Overwrites a file with zeros and syncs it before it is unlinked. */
_warn_unused_result_ int pki_wipe_file(const char *path);

int verb_cluster(int argc, char *argv[]);
