/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <curl/curl.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <time.h>

#include "components.h"
#include "secure.h"

static bool segment_ok(const char *s, size_t n) {
        return n > 0 && !(n == 1 && s[0] == '.') && !(n == 2 && s[0] == '.' && s[1] == '.');
}

/* Absolute, every segment non-empty and neither "." nor "..". */
static bool path_ok(const char *p, bool allow_root) {
        const char *s;

        if (!p || p[0] != '/')
                return false;
        if (allow_root && strcmp(p, "/") == 0)
                return true;
        s = p + 1;
        for (;;) {
                const char *slash = strchr(s, '/');
                size_t n = slash ? (size_t) (slash - s) : strlen(s);

                if (!segment_ok(s, n))
                        return false;
                if (!slash)
                        return true;
                s = slash + 1;
        }
}

int components_target_path(const char *root, const char *install_path, char **ret, struct cnos_err *e) {
        char *p;

        if (!path_ok(root, true))
                return cnos_err_set(e, -EINVAL, "component root \"%s\" is not a clean absolute path", root ? root : "");
        if (!path_ok(install_path, false))
                return cnos_err_set(e, -EINVAL, "install path \"%s\" is not an absolute path without \"..\", \".\" or empty segments",
                                    install_path ? install_path : "");
        if (asprintf(&p, "%s%s", strcmp(root, "/") == 0 ? "" : root, install_path) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        *ret = p;
        return 0;
}

/* mkdir -p of the parents of `path` below `root` (which must exist), 0755, refusing symlinks. */
static int make_parents(const char *root, const char *path, struct cnos_err *e) {
        _cleanup_free_ char *p = strdup(path);
        size_t skip = strcmp(root, "/") == 0 ? 0 : strlen(root);

        if (!p)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        for (char *s = p + skip + 1; (s = strchr(s, '/')); s++) {
                struct stat st;

                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return cnos_err_set(e, negative_errno(), "mkdir %s: %m", p);
                if (lstat(p, &st) < 0)
                        return cnos_err_set(e, negative_errno(), "%s: %m", p);
                if (!S_ISDIR(st.st_mode))
                        return cnos_err_set(e, -ENOTDIR, "%s is not a directory (a symlink?)", p);
                *s = '/';
        }
        return 0;
}

struct sink {
        int fd;
        EVP_MD_CTX *md;
        uint64_t size, max;
        bool too_big, io_error;
};

static size_t sink_write(char *data, size_t size, size_t nmemb, void *userdata) {
        struct sink *s = userdata;
        size_t n = size * nmemb, done = 0;

        if (s->size + n > s->max || s->size + n < s->size) {
                s->too_big = true;
                return 0; /* aborts the transfer */
        }
        if (EVP_DigestUpdate(s->md, data, n) != 1) {
                s->io_error = true;
                return 0;
        }
        while (done < n) {
                ssize_t w = write(s->fd, data + done, n - done);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        s->io_error = true;
                        return 0;
                }
                done += (size_t) w;
        }
        s->size += n;
        return n;
}

static void curl_easy_cleanupp(CURL **c) {
        if (*c)
                curl_easy_cleanup(*c);
}
static void evp_md_ctx_freep(EVP_MD_CTX **c) {
        EVP_MD_CTX_free(*c);
}

enum attempt_result { ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FAIL };

/* One transfer into `fd` (truncated first). */
static enum attempt_result fetch(const char *url, int fd, const struct components_options *o, uint8_t digest[32], uint64_t *ret_size,
                                 int *ret_err, struct cnos_err *e) {
        _cleanup_(curl_easy_cleanupp) CURL *c = NULL;
        _cleanup_(evp_md_ctx_freep) EVP_MD_CTX *md = NULL;
        char errbuf[CURL_ERROR_SIZE] = {};
        struct sink s = { .fd = fd, .max = o->max_size };
        long http = 0;
        CURLcode rc;

        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
                *ret_err = cnos_err_set(e, negative_errno(), "truncating the temporary file: %m");
                return ATTEMPT_FAIL;
        }
        md = EVP_MD_CTX_new();
        c = curl_easy_init();
        if (!md || !c || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
                *ret_err = cnos_err_set(e, -ENOMEM, "out of memory");
                return ATTEMPT_FAIL;
        }
        s.md = md;
        (void) curl_easy_setopt(c, CURLOPT_URL, url);
        (void) curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        (void) curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        (void) curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        (void) curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        (void) curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        (void) curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        (void) curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
        (void) curl_easy_setopt(c, CURLOPT_TIMEOUT, o->timeout_s);
        (void) curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) o->max_size);
        (void) curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
        (void) curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        (void) curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        (void) curl_easy_setopt(c, CURLOPT_USERAGENT, "cnos-bootstrapper");

        rc = curl_easy_perform(c);
        (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
        if (s.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
                *ret_err = cnos_err_set(e, -EFBIG, "%s: larger than the cap of %llu bytes", url, (unsigned long long) o->max_size);
                return ATTEMPT_FAIL;
        }
        if (s.io_error) {
                *ret_err = cnos_err_set(e, -EIO, "%s: writing the temporary file failed", url);
                return ATTEMPT_FAIL;
        }
        if (rc == CURLE_HTTP_RETURNED_ERROR) {
                bool transient = http >= 500 || http == 429 || http == 408;

                *ret_err = cnos_err_set(e, transient ? -EAGAIN : -ENOENT, "%s: HTTP %ld", url, http);
                return transient ? ATTEMPT_RETRY : ATTEMPT_FAIL;
        }
        if (rc != CURLE_OK) {
                bool transient = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_OPERATION_TIMEDOUT ||
                                 rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
                                 rc == CURLE_SSL_CONNECT_ERROR;
                int err = rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
                        : rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT ? -EINVAL : -EIO;

                *ret_err = cnos_err_set(e, err, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
                return transient ? ATTEMPT_RETRY : ATTEMPT_FAIL;
        }
        if (EVP_DigestFinal_ex(md, digest, NULL) != 1) {
                *ret_err = cnos_err_set(e, -EIO, "%s: SHA-256 failed", url);
                return ATTEMPT_FAIL;
        }
        *ret_size = s.size;
        return ATTEMPT_OK;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static bool hash_missing(const uint8_t h[JOIN_COMPONENT_HASH_SIZE]) {
        static const uint8_t zero[JOIN_COMPONENT_HASH_SIZE];

        return ct_memeq(h, zero, sizeof(zero));
}

int components_install_one(const struct join_component *c, const struct components_options *opts, struct cnos_err *e) {
        struct components_options o = {};
        _cleanup_free_ char *target = NULL, *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -EBADF, dfd = -EBADF;
        uint8_t digest[32];
        uint64_t size = 0;
        unsigned delay;
        int r = -EIO;

        if (!c || !opts)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        o = *opts;
        if (o.max_size == 0)
                o.max_size = COMPONENTS_MAX_SIZE_DEFAULT;
        if (o.attempts == 0)
                o.attempts = COMPONENTS_ATTEMPTS_DEFAULT;
        if (o.retry_delay_ms == 0)
                o.retry_delay_ms = COMPONENTS_RETRY_DELAY_MS_DEFAULT;
        if (o.timeout_s == 0)
                o.timeout_s = COMPONENTS_TIMEOUT_S_DEFAULT;

        if (!c->url || (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0))
                return cnos_err_set(e, -EINVAL, "component \"%s\": only http:// and https:// URLs", c->url ? c->url : "");
        if (hash_missing(c->sha256))
                return cnos_err_set(e, -EKEYREJECTED, "component %s: no SHA-256 pin", c->url);
        GUARD(components_target_path(o.root, c->install_path, &target, e));
        GUARD(make_parents(o.root, target, e));

        dir = strdup(target);
        if (!dir || asprintf(&tmp, "%s/.%s.cnos-download", dirname(dir), strrchr(target, '/') + 1) < 0)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        (void) unlink(tmp); /* a leftover of an earlier, interrupted boot */
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return cnos_err_set(e, negative_errno(), "creating %s: %m", tmp);

        delay = o.retry_delay_ms;
        for (unsigned n = 1;; n++) {
                enum attempt_result a;

                cnos_err_clear(e);
                a = fetch(c->url, fd, &o, digest, &size, &r, e);
                if (a == ATTEMPT_OK)
                        break;
                if (a == ATTEMPT_FAIL || n >= o.attempts) {
                        (void) unlink(tmp);
                        return cnos_err_prefix(e, r, "component (attempt %u of %u): ", n, o.attempts);
                }
                sleep_ms(delay);
                delay = MIN(delay * 2, 30000U);
        }

        if (!ct_memeq(digest, c->sha256, sizeof(digest))) {
                (void) unlink(tmp);
                return cnos_err_set(e, -EKEYREJECTED, "component %s: SHA-256 does not match the pin; not installed", c->url);
        }
        if (fchmod(fd, 0755) < 0 || fsync(fd) < 0) {
                r = cnos_err_set(e, negative_errno(), "%s: %m", tmp);
                (void) unlink(tmp);
                return r;
        }
        if (rename(tmp, target) < 0) {
                r = cnos_err_set(e, negative_errno(), "rename to %s: %m", target);
                (void) unlink(tmp);
                return r;
        }
        free(dir);
        dir = strdup(target);
        if (dir) {
                dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void) fsync(dfd);
        }
        return 0;
}

int components_install(const struct join_ticket *t, const struct components_options *o, struct cnos_err *e) {
        CURLcode rc;

        if (!t || !o)
                return cnos_err_set(e, -EINVAL, "invalid argument");
        rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK)
                return cnos_err_set(e, -EIO, "libcurl: %s", curl_easy_strerror(rc));
        for (size_t i = 0; i < t->n_components; i++) {
                int r = components_install_one(&t->components[i], o, e);

                if (r < 0) {
                        curl_global_cleanup();
                        return r;
                }
        }
        curl_global_cleanup();
        return 0;
}
