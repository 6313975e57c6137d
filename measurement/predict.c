/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>

#include "predict.h"

static const uint8_t zeros[65536];

/* Feeds `b`'s in-memory view (file bytes, then zeros up to VirtualSize) into a digest. */
static int blob_update(EVP_MD_CTX *ctx, const struct uki_blob *b) {
        size_t left;

        if (b->file_size > 0 && EVP_DigestUpdate(ctx, b->data, b->file_size) != 1)
                return -EIO;
        for (left = b->size - b->file_size; left > 0;) {
                size_t k = MIN(left, sizeof(zeros));
                if (EVP_DigestUpdate(ctx, zeros, k) != 1)
                        return -EIO;
                left -= k;
        }
        return 0;
}

static int blob_digest(enum cnos_hash alg, const struct uki_blob *b, uint8_t *out) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int r;

        if (!ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(ctx, cnos_hash_md(alg), NULL) != 1)
                return -EIO;
        r = blob_update(ctx, b);
        if (r < 0)
                return r;
        return EVP_DigestFinal_ex(ctx, out, NULL) == 1 ? 0 : -EIO;
}

struct authenticode_job {
        const struct pe_image *pe;
        enum cnos_hash alg;
        uint8_t digest[CNOS_HASH_MAX_SIZE];
        struct cnos_err err;
        int r;
};

static void *authenticode_thread(void *userdata) {
        struct authenticode_job *j = userdata;

        j->r = pe_authenticode(j->pe, j->alg, j->digest, &j->err);
        return NULL;
}

static int add_event(struct pcr_prediction *p, unsigned pcr, const char *what, const uint8_t *digest) {
        struct predicted_event *ev;
        int r;

        if (p->n_events >= PREDICT_MAX_EVENTS)
                return -E2BIG;
        ev = &p->events[p->n_events++];
        ev->pcr = pcr;
        snprintf(ev->what, sizeof(ev->what), "%s", what);
        memcpy(ev->digest, digest, cnos_hash_size(p->alg));
        r = cnos_pcr_extend(p->alg, p->pcrs[pcr], digest);
        return r;
}

static int add_event_data(struct pcr_prediction *p, unsigned pcr, const char *what, const void *data, size_t len) {
        uint8_t d[CNOS_HASH_MAX_SIZE];
        int r;

        r = cnos_hash_buffer(p->alg, data, len, d);
        if (r < 0)
                return r;
        return add_event(p, pcr, what, d);
}

/* The kernel's LoadOptions as systemd-stub sets them from .cmdline: the section's bytes up to the
 * first NUL (or its end), widened to UTF-16LE, plus a UTF-16 NUL (LoadOptionsSize counts it). Only
 * ASCII is modelled; anything else is refused rather than guessed. */
static int cmdline_utf16(const struct uki_blob *b, uint8_t **ret, size_t *ret_len, struct cnos_err *e) {
        size_t n = 0;
        uint8_t *buf;

        while (n < b->file_size && b->data[n] != 0)
                n++;
        for (size_t i = 0; i < n; i++)
                if (b->data[i] >= 0x80)
                        return cnos_err_set(e, -EOPNOTSUPP, ".cmdline: non-ASCII byte 0x%02x at offset %zu is not modelled",
                                            b->data[i], i);
        buf = malloc(2 * n + 2);
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                buf[2 * i] = b->data[i];
                buf[2 * i + 1] = 0;
        }
        buf[2 * n] = buf[2 * n + 1] = 0;
        *ret = buf;
        *ret_len = 2 * n + 2;
        return 0;
}

int predict_from_inputs(const struct predict_inputs *in, struct pcr_prediction *ret) {
        static const uint8_t separator[4] = { 0, 0, 0, 0 };
        static const char calling[] = "Calling EFI Application from Boot Option";
        struct pcr_prediction p = { .alg = in->alg, .mask = PREDICT_PCR_MASK, .model = in->model };
        int r;

        if (!cnos_hash_md(in->alg) || !in->model)
                return -EINVAL;

        /* PCR 4: OVMF's boot manager, then LoadImage() of the UKI and of the kernel inside it. */
        r = add_event_data(&p, 4, "EV_EFI_ACTION Calling EFI Application from Boot Option", calling, strlen(calling));
        if (r >= 0)
                r = add_event_data(&p, 4, "EV_SEPARATOR", separator, sizeof(separator));
        if (r >= 0)
                r = add_event(&p, 4, "EV_EFI_BOOT_SERVICES_APPLICATION UKI (Authenticode)", in->uki_authenticode);
        if (r >= 0)
                r = add_event(&p, 4, "EV_EFI_BOOT_SERVICES_APPLICATION .linux (Authenticode)", in->linux_authenticode);
        /* PCR 9: the kernel's EFI stub measures its load options, then the initrd. */
        if (r >= 0 && in->has_load_options)
                r = add_event(&p, 9, "EV_EVENT_TAG LOADED_IMAGE::LoadOptions", in->load_options);
        if (r >= 0 && in->section_present[UKI_INITRD])
                r = add_event(&p, 9, "EV_EVENT_TAG Linux initrd", in->section[UKI_INITRD]);
        /* PCR 11: systemd-stub, each present section's name and contents in the model's order. */
        for (size_t i = 0; r >= 0 && i < in->model->n_pcr11; i++) {
                enum uki_section s = in->model->pcr11_order[i];
                const char *name = uki_section_name(s);
                char what[64];

                if (!in->section_present[s])
                        continue;
                snprintf(what, sizeof(what), "EV_IPL section name %s", name);
                r = add_event_data(&p, 11, what, name, strlen(name) + 1);
                if (r < 0)
                        break;
                snprintf(what, sizeof(what), "EV_IPL section data %s", name);
                r = add_event(&p, 11, what, in->section[s]);
        }
        if (r < 0)
                return r;
        *ret = p;
        return 0;
}

int predict_uki(const uint8_t *data, size_t size, enum cnos_hash alg, unsigned force_stub_version,
                struct pcr_prediction *ret, struct cnos_err *e) {
        _cleanup_free_ uint8_t *linux_copy = NULL, *cmdline16 = NULL;
        struct pcr_prediction p;
        struct authenticode_job uki_job = { .alg = alg };
        struct pe_image kernel = {};
        uint8_t linux_auth[CNOS_HASH_MAX_SIZE], digests[_UKI_SECTION_MAX][CNOS_HASH_MAX_SIZE];
        struct uki u = {};
        pthread_t thread;
        bool thread_started = false;
        size_t cmdline16_len = 0;
        int r;

        if (!cnos_hash_md(alg))
                return cnos_err_set(e, -EINVAL, "unsupported hash algorithm");

        r = uki_parse(data, size, force_stub_version, &u, e);
        if (r < 0)
                return r;

        /* A .pcrsig/.pcrpkey makes systemd-stub append generated cpio archives to the initrd (PCR 9),
         * which this model does not reproduce. */
        if (u.sections[UKI_PCRSIG].present || u.sections[UKI_PCRPKEY].present || u.sections[UKI_UCODE].present) {
                r = cnos_err_set(e, -EOPNOTSUPP,
                                 "UKIs with .pcrsig, .pcrpkey or .ucode sections change the initrd the kernel measures; not modelled");
                goto out;
        }

        /* Thread 1: the UKI's Authenticode (the largest single pass). */
        uki_job.pe = &u.pe;
        if (pthread_create(&thread, NULL, authenticode_thread, &uki_job) == 0)
                thread_started = true;
        else
                authenticode_thread(&uki_job);

        /* This thread: the kernel image as the stub hands it to LoadImage(), then the sections. */
        const struct uki_blob *lx = &u.sections[UKI_LINUX];
        const uint8_t *kbuf = lx->data;
        if (lx->size > lx->file_size) {
                linux_copy = calloc(1, lx->size);
                if (!linux_copy) {
                        r = -ENOMEM;
                        goto out;
                }
                memcpy(linux_copy, lx->data, lx->file_size);
                kbuf = linux_copy;
        }
        r = pe_parse(kbuf, lx->size, &kernel, e);
        if (r < 0) {
                r = cnos_err_prefix(e, r, ".linux: ");
                goto out;
        }
        r = pe_authenticode(&kernel, alg, linux_auth, e);
        if (r < 0) {
                r = cnos_err_prefix(e, r, ".linux: ");
                goto out;
        }
        for (int s = 0; s < _UKI_SECTION_MAX; s++) {
                if (!u.sections[s].present)
                        continue;
                r = blob_digest(alg, &u.sections[s], digests[s]);
                if (r < 0)
                        goto out;
        }
        if (u.sections[UKI_CMDLINE].present) {
                r = cmdline_utf16(&u.sections[UKI_CMDLINE], &cmdline16, &cmdline16_len, e);
                if (r < 0)
                        goto out;
        }

        if (thread_started) {
                (void) pthread_join(thread, NULL);
                thread_started = false;
        }
        if (uki_job.r < 0) {
                r = cnos_err_set(e, uki_job.r, "%s", uki_job.err.msg);
                goto out;
        }

        struct predict_inputs pin = { .alg = alg, .model = u.model };
        memcpy(pin.uki_authenticode, uki_job.digest, sizeof(pin.uki_authenticode));
        memcpy(pin.linux_authenticode, linux_auth, sizeof(pin.linux_authenticode));
        if (cmdline16) {
                pin.has_load_options = true;
                r = cnos_hash_buffer(alg, cmdline16, cmdline16_len, pin.load_options);
                if (r < 0)
                        goto out;
        }
        for (int s = 0; s < _UKI_SECTION_MAX; s++) {
                pin.section_present[s] = u.sections[s].present && u.sections[s].size > 0;
                memcpy(pin.section[s], digests[s], sizeof(pin.section[s]));
        }
        r = predict_from_inputs(&pin, &p);
        if (r < 0)
                goto out;

        memcpy(p.stub_version, u.stub_version, sizeof(p.stub_version));
        *ret = p;
        r = 0;
out:
        if (thread_started)
                (void) pthread_join(thread, NULL);
        pe_image_done(&kernel);
        uki_done(&u);
        return r;
}
