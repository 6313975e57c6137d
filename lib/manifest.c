/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>

#include "hex.h"
#include "jcs.h"
#include "manifest.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);

static int add_hex(struct json_object *o, const char *key, const uint8_t *d, size_t n) {
        char buf[2 * CNOS_HASH_MAX_SIZE + 1];

        if (n > CNOS_HASH_MAX_SIZE)
                return -EINVAL;
        return json_object_object_add(o, key, json_object_new_string(hex_encode(d, n, buf))) == 0 ? 0 : -ENOMEM;
}

int manifest_to_json(const struct manifest *m, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *root = json_object_new_object();
        struct json_object *image = json_object_new_object(), *model = json_object_new_object(),
                           *pcrs = json_object_new_object();
        size_t hs = cnos_hash_size(m->alg);
        int r;

        if (!root || !image || !model || !pcrs) {
                json_object_put(image);
                json_object_put(model);
                json_object_put(pcrs);
                return -ENOMEM;
        }
        json_object_object_add(root, "image", image);
        json_object_object_add(root, "model", model);
        json_object_object_add(root, "pcrs", pcrs);
        json_object_object_add(root, "schema", json_object_new_string(MANIFEST_SCHEMA));

        json_object_object_add(image, "name", json_object_new_string(m->name));
        json_object_object_add(image, "version", json_object_new_string(m->version));
        json_object_object_add(image, "size", json_object_new_int64((int64_t) m->image_size));
        r = add_hex(image, "sha256", m->image_sha256, 32);
        if (r < 0)
                return r;

        json_object_object_add(model, "alg", json_object_new_string(cnos_hash_name(m->alg)));
        json_object_object_add(model, "boot", json_object_new_string(m->boot));
        json_object_object_add(model, "stub_version", json_object_new_string(m->stub_version));

        for (unsigned i = 0; i < CNOS_PCR_COUNT; i++) {
                struct json_object *p;
                char key[4];

                if (!m->pcrs[i].present)
                        continue;
                p = json_object_new_object();
                if (!p)
                        return -ENOMEM;
                snprintf(key, sizeof(key), "%u", i);
                json_object_object_add(pcrs, key, p);
                r = add_hex(p, "expected", m->pcrs[i].expected, hs);
                if (r < 0)
                        return r;
                json_object_object_add(p, "warn_only", json_object_new_boolean(m->pcrs[i].warn_only));
        }
        *ret = TAKE_PTR(root);
        return 0;
}

int manifest_write(FILE *f, const struct manifest *m) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        r = manifest_to_json(m, &o);
        if (r < 0)
                return r;
        r = jcs_write(f, o);
        if (r < 0)
                return r;
        fputc('\n', f);
        return ferror(f) ? -EIO : 0;
}

static int get_field(struct json_object *o, const char *key, enum json_type t, struct json_object **ret, struct cnos_err *e) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
                return cnos_err_set(e, -EBADMSG, "manifest: field \"%s\" missing or of the wrong type", key);
        *ret = v;
        return 0;
}

static int get_string(struct json_object *o, const char *key, char *out, size_t max, struct cnos_err *e) {
        struct json_object *v;
        int r = get_field(o, key, json_type_string, &v, e);

        if (r < 0)
                return r;
        if ((size_t) json_object_get_string_len(v) >= max)
                return cnos_err_set(e, -EBADMSG, "manifest: field \"%s\" too long", key);
        memcpy(out, json_object_get_string(v), (size_t) json_object_get_string_len(v) + 1);
        return 0;
}

static int get_hex(struct json_object *o, const char *key, uint8_t *out, size_t n, struct cnos_err *e) {
        struct json_object *v;
        int r = get_field(o, key, json_type_string, &v, e);

        if (r < 0)
                return r;
        if (hex_decode(json_object_get_string(v), out, n) < 0)
                return cnos_err_set(e, -EBADMSG, "manifest: field \"%s\" is not %zu bytes of hex", key, n);
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_tokener *, json_tokener_free);

int manifest_parse(const char *text, size_t len, struct manifest *ret, struct cnos_err *e) {
        _cleanup_(json_tokener_freep) struct json_tokener *tok = json_tokener_new_ex(16);
        _cleanup_(json_object_putp) struct json_object *root = NULL;
        struct json_object *image, *model, *pcrs, *v;
        struct manifest m = {};
        char schema[64], alg[16];
        int r, h;

        if (!tok)
                return -ENOMEM;
        if (len > MANIFEST_MAX_SIZE)
                return cnos_err_set(e, -EFBIG, "manifest: %zu bytes exceeds the %u-byte limit", len, MANIFEST_MAX_SIZE);
        root = json_tokener_parse_ex(tok, text, (int) len);
        if (!root || json_tokener_get_error(tok) != json_tokener_success)
                return cnos_err_set(e, -EBADMSG, "manifest: invalid JSON at offset %zu: %s", json_tokener_get_parse_end(tok),
                                    json_tokener_error_desc(json_tokener_get_error(tok)));
        if (!json_object_is_type(root, json_type_object))
                return cnos_err_set(e, -EBADMSG, "manifest: not a JSON object");

        r = get_string(root, "schema", schema, sizeof(schema), e);
        if (r < 0)
                return r;
        if (strcmp(schema, MANIFEST_SCHEMA) != 0)
                return cnos_err_set(e, -EBADMSG, "manifest: unknown schema \"%s\"", schema);

        if ((r = get_field(root, "image", json_type_object, &image, e)) < 0 ||
            (r = get_field(root, "model", json_type_object, &model, e)) < 0 ||
            (r = get_field(root, "pcrs", json_type_object, &pcrs, e)) < 0 ||
            (r = get_string(image, "name", m.name, sizeof(m.name), e)) < 0 ||
            (r = get_string(image, "version", m.version, sizeof(m.version), e)) < 0 ||
            (r = get_hex(image, "sha256", m.image_sha256, 32, e)) < 0 ||
            (r = get_field(image, "size", json_type_int, &v, e)) < 0)
                return r;
        if (json_object_get_int64(v) < 0)
                return cnos_err_set(e, -EBADMSG, "manifest: negative image size");
        m.image_size = (uint64_t) json_object_get_int64(v);

        if ((r = get_string(model, "alg", alg, sizeof(alg), e)) < 0 ||
            (r = get_string(model, "boot", m.boot, sizeof(m.boot), e)) < 0 ||
            (r = get_string(model, "stub_version", m.stub_version, sizeof(m.stub_version), e)) < 0)
                return r;
        h = cnos_hash_from_name(alg);
        if (h < 0)
                return cnos_err_set(e, -EBADMSG, "manifest: unknown hash algorithm \"%s\"", alg);
        m.alg = (enum cnos_hash) h;

        json_object_object_foreach(pcrs, key, p) {
                char *end;
                unsigned long idx;
                struct json_object *w;

                errno = 0;
                idx = strtoul(key, &end, 10);
                if (errno || *end || end == key || idx >= CNOS_PCR_COUNT || (key[0] == '0' && key[1]))
                        return cnos_err_set(e, -EBADMSG, "manifest: invalid PCR index \"%s\"", key);
                if (!json_object_is_type(p, json_type_object))
                        return cnos_err_set(e, -EBADMSG, "manifest: PCR %lu is not an object", idx);
                r = get_hex(p, "expected", m.pcrs[idx].expected, cnos_hash_size(m.alg), e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "PCR %lu: ", idx);
                r = get_field(p, "warn_only", json_type_boolean, &w, e);
                if (r < 0)
                        return cnos_err_prefix(e, r, "PCR %lu: ", idx);
                m.pcrs[idx].warn_only = json_object_get_boolean(w);
                m.pcrs[idx].present = true;
        }
        *ret = m;
        return 0;
}
