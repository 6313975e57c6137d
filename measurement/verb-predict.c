/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <json-c/json.h>

#include "fileio.h"
#include "hex.h"
#include "image.h"
#include "log.h"
#include "predict.h"
#include "predict-input.h"
#include "verbs.h"

int predict_input_load(const char *uki_path, const char *image_path, struct predict_input *ret) {
        struct cnos_err e = {};
        const char *path = uki_path ?: image_path;
        int r;

        *ret = (struct predict_input) {};
        r = map_file(path, &ret->file);
        if (r < 0)
                return log_error_errno(r, "%s: cannot read: %m", path);
        if (uki_path) {
                ret->uki = ret->file.data;
                ret->uki_size = ret->file.size;
                return 0;
        }
        r = image_find_uki(ret->file.data, ret->file.size, &ret->uki, &ret->uki_size, &ret->copy, &e);
        if (r < 0) {
                unmap_file(&ret->file);
                return log_error_errno(r, "%s: %s", path, cnos_err_msg(&e));
        }
        return 0;
}

void predict_input_done(struct predict_input *in) {
        unmap_file(&in->file);
        free(in->copy);
        *in = (struct predict_input) {};
}

int predict_print_json(FILE *f, const struct pcr_prediction *p) {
        struct json_object *root = json_object_new_object(), *pcrs = json_object_new_object();
        char hex[2 * CNOS_HASH_MAX_SIZE + 1];

        if (!root || !pcrs) {
                json_object_put(root);
                json_object_put(pcrs);
                return -ENOMEM;
        }
        json_object_object_add(root, "pcrs", pcrs);
        for (unsigned i = 0; i < CNOS_PCR_COUNT; i++) {
                char key[4];
                if (!(p->mask & (1U << i)))
                        continue;
                snprintf(key, sizeof(key), "%u", i);
                json_object_object_add(pcrs, key,
                                       json_object_new_string(hex_encode(p->pcrs[i], cnos_hash_size(p->alg), hex)));
        }
        json_object_object_add(root, "alg", json_object_new_string(cnos_hash_name(p->alg)));
        json_object_object_add(root, "model", json_object_new_string(p->model->name));
        json_object_object_add(root, "stub_version", json_object_new_string(p->stub_version));
        fprintf(f, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
        return 0;
}

static void print_text(FILE *f, const struct pcr_prediction *p) {
        char hex[2 * CNOS_HASH_MAX_SIZE + 1];
        size_t hs = cnos_hash_size(p->alg);

        fprintf(f, "model: %s (stub %s), OVMF first boot option, Linux >= 6.1 EFI stub\n", p->model->name,
                p->stub_version[0] ? p->stub_version : "version given on the command line");
        fprintf(f, "events:\n");
        for (size_t i = 0; i < p->n_events; i++)
                fprintf(f, "  PCR %-2u %s  %s\n", p->events[i].pcr, hex_encode(p->events[i].digest, hs, hex),
                        p->events[i].what);
        fprintf(f, "pcrs (%s):\n", cnos_hash_name(p->alg));
        for (unsigned i = 0; i < CNOS_PCR_COUNT; i++)
                if (p->mask & (1U << i))
                        fprintf(f, "  %2u: %s\n", i, hex_encode(p->pcrs[i], hs, hex));
}

int verb_predict(int argc, char *argv[]) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "uki", required_argument, NULL, 'u' },
                { "image", required_argument, NULL, 'i' },
                { "alg", required_argument, NULL, 'a' },
                { "stub-version", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *uki = NULL, *image = NULL;
        enum cnos_hash alg = CNOS_HASH_SHA256;
        struct predict_input in;
        struct pcr_prediction p;
        struct cnos_err e = {};
        unsigned stub_version = 0;
        bool json = false;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'j': json = true; break;
                case 'u': uki = optarg; break;
                case 'i': image = optarg; break;
                case 'a':
                        r = cnos_hash_from_name(optarg);
                        if (r < 0) {
                                log_error("unknown --alg '%s' (sha1, sha256, sha384, sha512)", optarg);
                                return 2;
                        }
                        alg = (enum cnos_hash) r;
                        break;
                case 's': {
                        char *end;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*end || v == 0 || v > 9999) {
                                log_error("invalid --stub-version '%s'", optarg);
                                return 2;
                        }
                        stub_version = (unsigned) v;
                        break;
                }
                case 'h':
                        printf("cnos-measure predict [--json] [--alg ALG] [--stub-version N] (--uki FILE | --image FILE)\n");
                        return 0;
                default:
                        return 2;
                }
        if (!!uki == !!image || optind != argc) {
                log_error("predict: give exactly one of --uki FILE or --image FILE");
                return 2;
        }

        if (predict_input_load(uki, image, &in) < 0)
                return 2;
        r = predict_uki(in.uki, in.uki_size, alg, stub_version, &p, &e);
        predict_input_done(&in);
        if (r < 0) {
                log_error("%s: %s", uki ?: image, cnos_err_msg(&e));
                return 2;
        }
        if (json)
                r = predict_print_json(stdout, &p);
        else
                print_text(stdout, &p);
        if (r < 0 || fflush(stdout) != 0) {
                log_error("cannot write output");
                return 2;
        }
        return 0;
}
