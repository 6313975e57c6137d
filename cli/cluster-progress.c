/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A node's boot state from its serial console. The console is untrusted text from the guest: it
 * only ever moves a progress display and picks a failure message, never decides anything about
 * trust (the join service does that). The substrings matched are the stable parts of the lines that
 * systemd, cnos-bootstrapper (bootstrapper/main.c, joinclient.c) and the kubelet stand-in print. */

#include <fcntl.h>
#include <sys/stat.h>

#include "cluster.h"

static const char *const state_names[_NODE_STATE_MAX] = {
        [NODE_FIRMWARE] = "firmware", [NODE_INITRD] = "initrd", [NODE_ATTESTED] = "attested",
        [NODE_DISK_OPEN] = "disk-open", [NODE_BOUND] = "bound", [NODE_KUBELET] = "kubelet",
};

const char *node_state_to_string(enum node_state s) {
        return (unsigned) s < _NODE_STATE_MAX ? state_names[s] : "unknown";
}

int node_state_from_string(const char *s) {
        for (unsigned i = 0; s && i < _NODE_STATE_MAX; i++)
                if (strcmp(s, state_names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

/* Each line that moves a node forward. A later state implies the earlier ones (a console that lost
 * lines still ends in the right state). */
static const struct {
        const char *needle;
        enum node_state state;
} milestones[] = {
        { "systemd[1]: Running in initrd", NODE_INITRD },
        { "Starting cnos-bootstrapper", NODE_INITRD },
        { "cnos-bootstrapper: join service ", NODE_INITRD },
        { "cnos-bootstrapper: attempt ", NODE_INITRD },
        { ": ticket accepted: cluster ID ", NODE_ATTESTED },
        { "cnos-bootstrapper: state disk mounted on ", NODE_DISK_OPEN },
        { "cnos-bootstrapper: PCR 15 extended with the cluster ID", NODE_BOUND },
        { "cnos-kubelet-standin: OK", NODE_KUBELET },
};

/* Lines after which the node will not come up by itself. The bootstrapper's retries ("retrying in")
 * are not among them: the node waits for the join service. */
static const char *const failures[] = {
        "cnos-kubelet-standin: FAIL",
        "components/kubelet: unrecognized option", /* a stand-in older than the image's kubelet.service */
        "Failed to start cnos-boots", /* systemd shortens the description with an ellipsis */
        "cnos-bootstrapper.service: Failed with result",
        "join refused, not retrying",
        "join failed, not retrying",
        "giving up after",
        "state disk refused, not touched",
        "Kernel panic",
        "CNOS-ERROR",
};

int node_progress_feed(struct node_progress *p, const char *line) {
        int changed = 0;

        if (p->failed)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(failures); i++)
                if (strstr(line, failures[i])) {
                        p->failed = true;
                        (void) snprintf(p->reason, sizeof(p->reason), "%s", line);
                        return 1;
                }
        for (size_t i = 0; i < ELEMENTSOF(milestones); i++)
                if (milestones[i].state > p->state && strstr(line, milestones[i].needle)) {
                        p->state = milestones[i].state;
                        changed = 1;
                }
        return changed;
}

void console_clean_line(char *line) {
        char *w = line;

        for (const char *r = line; *r;) {
                if (*r == '\r') {
                        r++;
                } else if (*r == '\x1b') {
                        /* CSI: ESC [ parameters... final byte (0x40-0x7e); other escapes: ESC + one byte */
                        r++;
                        if (*r == '[') {
                                r++;
                                while (*r && !(*r >= 0x40 && *r <= 0x7e))
                                        r++;
                        }
                        if (*r)
                                r++;
                } else
                        *w++ = *r++;
        }
        *w = 0;
}

bool console_line_is_noise(const char *line) {
        const char *job = strstr(line, "Job ");

        return strstr(line, "A start job is running for") || strstr(line, "A stop job is running for") ||
               (job && strstr(job, " running ("));
}

static int feed_buffer(struct console_reader *r, struct node_progress *p) {
        int changed = 0;
        size_t start = 0;

        for (size_t i = 0; i < r->n; i++) {
                if (r->buf[i] != '\n')
                        continue;
                r->buf[i] = 0;
                console_clean_line(r->buf + start);
                changed |= node_progress_feed(p, r->buf + start);
                start = i + 1;
        }
        memmove(r->buf, r->buf + start, r->n - start);
        r->n -= start;
        if (r->n == sizeof(r->buf) - 1) {
                /* an overlong line: feed what we have so that a milestone in it is not lost forever */
                r->buf[r->n] = 0;
                console_clean_line(r->buf);
                changed |= node_progress_feed(p, r->buf);
                r->n = 0;
        }
        return changed;
}

int console_reader_poll(struct console_reader *r, const char *path, struct node_progress *p) {
        _cleanup_close_ int fd = -EBADF;
        int changed = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        for (;;) {
                ssize_t k = pread(fd, r->buf + r->n, sizeof(r->buf) - 1 - r->n, r->offset);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                r->offset += k;
                r->n += (size_t) k;
                changed |= feed_buffer(r, p);
        }
        return changed;
}

int console_tail(const char *path, unsigned n, char **ret) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        char **ring = NULL;
        size_t cap = 0, count = 0, total = 1;
        char *out, *w;
        int r = 0;

        if (n == 0)
                return -EINVAL;
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        ring = calloc(n, sizeof(*ring));
        if (!ring)
                return -ENOMEM;
        while (getline(&line, &cap, f) >= 0) {
                char **slot = &ring[count % n];

                line[strcspn(line, "\n")] = 0;
                console_clean_line(line);
                if (console_line_is_noise(line))
                        continue;
                free(*slot);
                *slot = strdup(line);
                if (!*slot) {
                        r = -ENOMEM;
                        goto out;
                }
                count++;
        }
        for (size_t i = count > n ? count - n : 0; i < count; i++)
                total += strlen(ring[i % n]) + 1;
        out = w = malloc(total);
        if (!out) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = count > n ? count - n : 0; i < count; i++)
                w += sprintf(w, "%s\n", ring[i % n]);
        *w = 0;
        *ret = out;
out:
        for (size_t i = 0; i < n; i++)
                free(ring[i]);
        free(ring);
        return r;
}
