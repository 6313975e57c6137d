/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* DIR/cluster.json: what `cnos cluster create` started, so that `status` and `destroy` work from a
 * fresh shell. It is read back strictly: `destroy` sends signals to the pids it names, so every pid
 * is checked to be a plain positive number and every executable name to be one cnos starts (and
 * proc_is() checks the live process against both before any signal). */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

#include "cluster.h"
#include "fileio.h"

#define STATE_FILE_MAX (1024U * 1024U)

static const char *const known_exes[] = { "qemu-system-x86_64", "swtpm", "cnos-joind", "python3" };

void cluster_free(struct cluster *c) {
        if (!c)
                return;
        free(c->dir);
        free(c->provider);
        free(c->image);
        free(c->api_endpoint);
        free(c->kubelet_sha256);
        free(c);
}

bool cluster_node_name_valid(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n >= CLUSTER_NAME_MAX || name[0] == '-' || name[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
                        return false;
        return true;
}

static int add_str(struct json_object *o, const char *k, const char *v) {
        struct json_object *s = json_object_new_string(v ? v : "");

        if (!s || json_object_object_add(o, k, s) < 0) {
                json_object_put(s);
                return -ENOMEM;
        }
        return 0;
}

static int add_int(struct json_object *o, const char *k, int64_t v) {
        struct json_object *i = json_object_new_int64(v);

        if (!i || json_object_object_add(o, k, i) < 0) {
                json_object_put(i);
                return -ENOMEM;
        }
        return 0;
}

static int add_obj(struct json_object *o, const char *k, struct json_object *v) {
        if (!v || json_object_object_add(o, k, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static struct json_object *proc_to_json(const struct cluster_proc *p, unsigned port) {
        struct json_object *o = json_object_new_object();

        if (!o || add_int(o, "pid", p->pid) < 0 || add_int(o, "start", (int64_t) p->start) < 0 ||
            add_str(o, "exe", p->exe) < 0 || (port && add_int(o, "port", port) < 0)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

int cluster_to_json(const struct cluster *c, struct json_object **ret) {
        struct json_object *o = json_object_new_object(), *nodes = json_object_new_array(), *k = json_object_new_object();

        if (!o || !nodes || !k)
                goto oom;
        if (add_int(o, "cnos-cluster", CLUSTER_STATE_VERSION) < 0 || add_str(o, "provider", c->provider) < 0 ||
            add_str(o, "dir", c->dir) < 0 || add_str(o, "image", c->image) < 0 ||
            add_str(o, "api-endpoint", c->api_endpoint) < 0)
                goto oom;
        if (add_str(k, "sha256", c->kubelet_sha256) < 0 || add_obj(k, "stand-in", json_object_new_boolean(c->kubelet_standin)) < 0)
                goto oom;
        if (add_obj(o, "kubelet", TAKE_PTR(k)) < 0 || add_obj(o, "joind", proc_to_json(&c->joind, c->joind_port)) < 0 ||
            add_obj(o, "http", proc_to_json(&c->http, c->http_port)) < 0)
                goto oom;
        for (size_t i = 0; i < c->n_nodes; i++) {
                struct json_object *n = json_object_new_object();

                if (!n || add_str(n, "name", c->nodes[i].name) < 0 || add_obj(n, "qemu", proc_to_json(&c->nodes[i].qemu, 0)) < 0 ||
                    add_obj(n, "swtpm", proc_to_json(&c->nodes[i].swtpm, 0)) < 0 || json_object_array_add(nodes, n) < 0) {
                        json_object_put(n);
                        goto oom;
                }
        }
        if (add_obj(o, "nodes", TAKE_PTR(nodes)) < 0)
                goto oom;
        *ret = o;
        return 0;
oom:
        json_object_put(o);
        json_object_put(nodes);
        json_object_put(k);
        return -ENOMEM;
}

static int get(struct json_object *o, const char *key, enum json_type t, struct json_object **ret, struct cnos_err *e) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
                return cnos_err_set(e, -EBADMSG, "\"%s\" missing or not a %s", key, json_type_to_name(t));
        *ret = v;
        return 0;
}

static int get_strdup(struct json_object *o, const char *key, char **ret, struct cnos_err *e) {
        struct json_object *v;

        GUARD(get(o, key, json_type_string, &v, e));
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

static int proc_from_json(struct json_object *o, const char *what, struct cluster_proc *p, unsigned *port, struct cnos_err *e) {
        struct json_object *v;
        int64_t pid, start;
        const char *exe;
        bool known = false;

        if (!json_object_is_type(o, json_type_object))
                return cnos_err_set(e, -EBADMSG, "%s: not an object", what);
        if (get(o, "pid", json_type_int, &v, e) < 0)
                return cnos_err_prefix(e, -EBADMSG, "%s: ", what);
        pid = json_object_get_int64(v);
        if (get(o, "start", json_type_int, &v, e) < 0)
                return cnos_err_prefix(e, -EBADMSG, "%s: ", what);
        start = json_object_get_int64(v);
        if (get(o, "exe", json_type_string, &v, e) < 0)
                return cnos_err_prefix(e, -EBADMSG, "%s: ", what);
        exe = json_object_get_string(v);
        /* pid 0 = never started; 1 is init: never ours */
        if (pid < 0 || pid == 1 || pid > INT_MAX)
                return cnos_err_set(e, -EBADMSG, "%s: pid %" PRId64 " is out of range", what, pid);
        if (start < 0 || (pid > 0 && start == 0))
                return cnos_err_set(e, -EBADMSG, "%s: start time %" PRId64 " is invalid", what, start);
        for (size_t i = 0; i < ELEMENTSOF(known_exes); i++)
                known = known || strcmp(exe, known_exes[i]) == 0;
        if (!known)
                return cnos_err_set(e, -EBADMSG, "%s: \"%.40s\" is not a program cnos starts", what, exe);
        *p = (struct cluster_proc) { .pid = (pid_t) pid, .start = (uint64_t) start };
        (void) snprintf(p->exe, sizeof(p->exe), "%s", exe);
        if (port) {
                int64_t n = 0;

                if (json_object_object_get_ex(o, "port", &v)) {
                        if (!json_object_is_type(v, json_type_int) || (n = json_object_get_int64(v)) < 1 || n > 65535)
                                return cnos_err_set(e, -EBADMSG, "%s: port is not 1-65535", what);
                }
                *port = (unsigned) n;
        }
        return 0;
}

int cluster_from_json(const char *text, struct cluster **ret, struct cnos_err *e) {
        _cleanup_(cluster_freep) struct cluster *c = NULL;
        struct json_tokener *tok;
        struct json_object *o, *v, *k, *nodes;
        enum json_tokener_error jerr;
        size_t n;
        int r;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) strnlen(text, STATE_FILE_MAX));
        jerr = json_tokener_get_error(tok);
        json_tokener_free(tok);
        if (!o || jerr != json_tokener_success) {
                json_object_put(o);
                return cnos_err_set(e, -EBADMSG, "not JSON: %s", json_tokener_error_desc(jerr));
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                r = -ENOMEM;
                goto out;
        }
        r = -EBADMSG;
        if (!json_object_is_type(o, json_type_object)) {
                r = cnos_err_set(e, -EBADMSG, "not a JSON object");
                goto out;
        }
        if (get(o, "cnos-cluster", json_type_int, &v, e) < 0)
                goto out;
        if (json_object_get_int64(v) != CLUSTER_STATE_VERSION) {
                r = cnos_err_set(e, -EPROTONOSUPPORT, "version %" PRId64 ", this cnos reads version %d", json_object_get_int64(v),
                                 CLUSTER_STATE_VERSION);
                goto out;
        }
        if ((r = get_strdup(o, "provider", &c->provider, e)) < 0 || (r = get_strdup(o, "dir", &c->dir, e)) < 0 ||
            (r = get_strdup(o, "image", &c->image, e)) < 0 || (r = get_strdup(o, "api-endpoint", &c->api_endpoint, e)) < 0)
                goto out;
        if (strcmp(c->provider, "qemu") != 0) {
                r = cnos_err_set(e, -EBADMSG, "provider \"%.40s\" is not qemu", c->provider);
                goto out;
        }
        if ((r = get(o, "kubelet", json_type_object, &k, e)) < 0 || (r = get_strdup(k, "sha256", &c->kubelet_sha256, e)) < 0 ||
            (r = get(k, "stand-in", json_type_boolean, &v, e)) < 0)
                goto out;
        c->kubelet_standin = json_object_get_boolean(v);
        if ((r = get(o, "joind", json_type_object, &v, e)) < 0 || (r = proc_from_json(v, "joind", &c->joind, &c->joind_port, e)) < 0 ||
            (r = get(o, "http", json_type_object, &v, e)) < 0 || (r = proc_from_json(v, "http", &c->http, &c->http_port, e)) < 0 ||
            (r = get(o, "nodes", json_type_array, &nodes, e)) < 0)
                goto out;
        n = json_object_array_length(nodes);
        if (n > CLUSTER_NODES_MAX) {
                r = cnos_err_set(e, -EBADMSG, "%zu nodes, at most %u", n, CLUSTER_NODES_MAX);
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                struct json_object *nd = json_object_array_get_idx(nodes, i), *q, *s, *name;
                struct cluster_node *cn = &c->nodes[i];
                char what[64];

                (void) snprintf(what, sizeof(what), "nodes[%zu]", i);
                if (!json_object_is_type(nd, json_type_object)) {
                        r = cnos_err_set(e, -EBADMSG, "%s: not an object", what);
                        goto out;
                }
                if ((r = get(nd, "name", json_type_string, &name, e)) < 0 || (r = get(nd, "qemu", json_type_object, &q, e)) < 0 ||
                    (r = get(nd, "swtpm", json_type_object, &s, e)) < 0) {
                        r = cnos_err_prefix(e, r, "%s: ", what);
                        goto out;
                }
                if (!cluster_node_name_valid(json_object_get_string(name))) {
                        r = cnos_err_set(e, -EBADMSG, "%s: name \"%.40s\" is not [a-z0-9-]{1,%d}", what, json_object_get_string(name),
                                         CLUSTER_NAME_MAX - 1);
                        goto out;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(c->nodes[j].name, json_object_get_string(name)) == 0) {
                                r = cnos_err_set(e, -EBADMSG, "%s: name \"%s\" given twice", what, c->nodes[j].name);
                                goto out;
                        }
                (void) snprintf(cn->name, sizeof(cn->name), "%s", json_object_get_string(name));
                (void) snprintf(what, sizeof(what), "node %s: qemu", cn->name);
                if ((r = proc_from_json(q, what, &cn->qemu, NULL, e)) < 0)
                        goto out;
                (void) snprintf(what, sizeof(what), "node %s: swtpm", cn->name);
                if ((r = proc_from_json(s, what, &cn->swtpm, NULL, e)) < 0)
                        goto out;
                c->n_nodes++;
        }
        *ret = TAKE_PTR(c);
        r = 0;
out:
        json_object_put(o);
        return r;
}

int cluster_save(const struct cluster *c, struct cnos_err *e) {
        struct json_object *o = NULL;
        _cleanup_free_ char *tmp = NULL, *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *text;
        size_t len;
        int r;

        r = cluster_to_json(c, &o);
        if (r < 0)
                return cnos_err_set(e, r, "cluster state: out of memory");
        if (asprintf(&tmp, "%s/.%s.tmp", c->dir, CLUSTER_STATE_FILE) < 0 || asprintf(&path, "%s/%s", c->dir, CLUSTER_STATE_FILE) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
        len = strlen(text);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                r = cnos_err_set(e, negative_errno(), "%s: %s", tmp, strerror(errno));
        else if (write(fd, text, len) != (ssize_t) len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
                r = cnos_err_set(e, negative_errno(), "%s: write: %s", tmp, strerror(errno));
        else if (rename(tmp, path) < 0)
                r = cnos_err_set(e, negative_errno(), "%s: %s", path, strerror(errno));
        json_object_put(o);
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

int cluster_load(const char *dir, struct cluster **ret, struct cnos_err *e) {
        _cleanup_(cluster_freep) struct cluster *c = NULL;
        _cleanup_free_ char *marker = NULL, *path = NULL, *abs = NULL;
        _cleanup_free_ uint8_t *text = NULL;
        struct stat st;
        size_t size;
        int r;

        abs = realpath(dir, NULL);
        if (!abs)
                return cnos_err_set(e, negative_errno(), "%s: %s", dir, strerror(errno));
        if (asprintf(&marker, "%s/" CLUSTER_MARKER, abs) < 0 || asprintf(&path, "%s/" CLUSTER_STATE_FILE, abs) < 0)
                return -ENOMEM;
        if (lstat(marker, &st) < 0 || !S_ISREG(st.st_mode))
                return cnos_err_set(e, -ENOTDIR, "%s is not a cnos cluster directory (no regular file %s)", abs, CLUSTER_MARKER);
        r = read_file(path, STATE_FILE_MAX, &text, &size);
        if (r < 0)
                return cnos_err_set(e, r, "%s: cannot read: %s", path, strerror(-r));
        if (memchr(text, 0, size))
                return cnos_err_set(e, -EBADMSG, "%s: holds a NUL byte", path);
        r = cluster_from_json((const char *) text, &c, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", path);
        /* the files are found relative to where DIR is now, not where it was created */
        free(c->dir);
        c->dir = TAKE_PTR(abs);
        *ret = TAKE_PTR(c);
        return 0;
}
