/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>

#include "attest.h"
#include "attestation/issuer.h"

struct joind_attester {
        pthread_mutex_t lock; /* one TPM command sequence at a time */
        struct issuer *issuer;
};

void attester_free(struct joind_attester *a) {
        if (!a)
                return;
        issuer_free(a->issuer);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

int attester_open(const char *tcti, const char *eventlog_path, struct joind_attester **ret, struct cnos_err *e) {
        _cleanup_(attester_freep) struct joind_attester *a = NULL;
        const struct issuer_config c = {
                .tee = CNOS__JOIN__TEE__TEE_TPM2,
                .tcti = tcti,
                .eventlog_path = eventlog_path ?: "", /* "": none */
        };
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        pthread_mutex_init(&a->lock, NULL);
        r = issuer_new(&c, &a->issuer, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int attester_evidence(
                struct joind_attester *a, const uint8_t binding[ATLS_BINDING_SIZE], Cnos__Join__Evidence **ret, struct cnos_err *e) {
        int r;

        pthread_mutex_lock(&a->lock);
        r = issuer_collect(a->issuer, binding, ret, e);
        pthread_mutex_unlock(&a->lock);
        return r;
}

int attester_activate(struct joind_attester *a, const Cnos__Join__CredentialChallenge *challenge, uint8_t **ret_secret,
                      size_t *ret_size, struct cnos_err *e) {
        int r;

        pthread_mutex_lock(&a->lock);
        r = issuer_activate(a->issuer, challenge, ret_secret, ret_size, e);
        pthread_mutex_unlock(&a->lock);
        return r;
}

void attester_evidence_free(Cnos__Join__Evidence *ev) {
        issuer_evidence_free(ev);
}
