/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <pthread.h>

#include "log.h"
#include "manifest.h"
#include "predict-input.h"
#include "verbs.h"

struct image_hash_job {
        const uint8_t *data;
        size_t size;
        uint8_t digest[32];
        int r;
};

static void *image_hash_thread(void *userdata) {
        struct image_hash_job *j = userdata;

        j->r = cnos_hash_buffer(CNOS_HASH_SHA256, j->data, j->size, j->digest);
        return NULL;
}

int verb_manifest(int argc, char *argv[]) {
        static const struct option options[] = {
                { "image", required_argument, NULL, 'i' },
                { "name", required_argument, NULL, 'n' },
                { "version", required_argument, NULL, 'v' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *image = NULL, *name = "cnos", *version = "dev";
        struct image_hash_job job = {};
        struct predict_input in;
        struct pcr_prediction p;
        struct manifest m = {};
        struct cnos_err e = {};
        pthread_t thread;
        bool threaded;
        int c, r;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'i': image = optarg; break;
                case 'n': name = optarg; break;
                case 'v': version = optarg; break;
                case 'h':
                        printf("cnos-measure manifest --image FILE [--name N --version V] > measurements.json\n");
                        return 0;
                default:
                        return 2;
                }
        if (!image || optind != argc) {
                log_error("manifest: --image FILE is required");
                return 2;
        }
        if (strlen(name) >= sizeof(m.name) || strlen(version) >= sizeof(m.version)) {
                log_error("manifest: --name/--version too long");
                return 2;
        }

        if (predict_input_load(NULL, image, &in) < 0)
                return 2;

        /* The whole-image SHA-256 runs beside the prediction. */
        job = (struct image_hash_job) { .data = in.file.data, .size = in.file.size };
        threaded = pthread_create(&thread, NULL, image_hash_thread, &job) == 0;
        if (!threaded)
                image_hash_thread(&job);
        r = predict_uki(in.uki, in.uki_size, CNOS_HASH_SHA256, 0, &p, &e);
        if (threaded)
                (void) pthread_join(thread, NULL);
        m.image_size = in.file.size;
        predict_input_done(&in);
        if (r < 0) {
                log_error("%s: %s", image, cnos_err_msg(&e));
                return 2;
        }
        if (job.r < 0) {
                log_error_errno(job.r, "%s: hashing failed: %m", image);
                return 2;
        }

        snprintf(m.name, sizeof(m.name), "%s", name);
        snprintf(m.version, sizeof(m.version), "%s", version);
        memcpy(m.image_sha256, job.digest, 32);
        m.alg = p.alg;
        snprintf(m.boot, sizeof(m.boot), "ovmf/%s/linux-efistub-6.1", p.model->name);
        snprintf(m.stub_version, sizeof(m.stub_version), "%s", p.stub_version);
        for (unsigned i = 0; i < CNOS_PCR_COUNT; i++)
                if (p.mask & (1U << i)) {
                        m.pcrs[i].present = true;
                        m.pcrs[i].warn_only = false;
                        memcpy(m.pcrs[i].expected, p.pcrs[i], cnos_hash_size(p.alg));
                }

        r = manifest_write(stdout, &m);
        if (r < 0 || fflush(stdout) != 0) {
                log_error("manifest: cannot write output");
                return 2;
        }
        return 0;
}
