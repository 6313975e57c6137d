/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <strings.h>

#include "digest.h"

static const struct {
        const char *name;
        uint16_t tpm_alg;
        size_t size;
} table[_CNOS_HASH_MAX] = {
        [CNOS_HASH_SHA1] = { "sha1", TPM2_ALG_SHA1_ID, 20 },
        [CNOS_HASH_SHA256] = { "sha256", TPM2_ALG_SHA256_ID, 32 },
        [CNOS_HASH_SHA384] = { "sha384", TPM2_ALG_SHA384_ID, 48 },
        [CNOS_HASH_SHA512] = { "sha512", TPM2_ALG_SHA512_ID, 64 },
};

static bool valid(enum cnos_hash h) {
        return (int) h >= 0 && h < _CNOS_HASH_MAX;
}

const char *cnos_hash_name(enum cnos_hash h) {
        return valid(h) ? table[h].name : NULL;
}

size_t cnos_hash_size(enum cnos_hash h) {
        return valid(h) ? table[h].size : 0;
}

uint16_t cnos_hash_tpm_alg(enum cnos_hash h) {
        return valid(h) ? table[h].tpm_alg : 0;
}

/* Explicitly fetched digests, once per process: EVP_sha256() and friends make every
 * EVP_DigestInit_ex() fetch the implementation again, which dominates short hashes such as the
 * PCR extends of an event-log replay. Fetched objects are never freed (one each, process-wide). */
static EVP_MD *fetched[_CNOS_HASH_MAX];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_all(void) {
        static const char *const names[_CNOS_HASH_MAX] = {
                [CNOS_HASH_SHA1] = "SHA1", [CNOS_HASH_SHA256] = "SHA2-256",
                [CNOS_HASH_SHA384] = "SHA2-384", [CNOS_HASH_SHA512] = "SHA2-512",
        };
        for (int i = 0; i < _CNOS_HASH_MAX; i++)
                fetched[i] = EVP_MD_fetch(NULL, names[i], NULL);
}

const EVP_MD *cnos_hash_md(enum cnos_hash h) {
        if (!valid(h))
                return NULL;
        (void) pthread_once(&fetch_once, fetch_all);
        return fetched[h];
}

int cnos_hash_from_name(const char *name) {
        if (!name)
                return -EINVAL;
        for (int i = 0; i < _CNOS_HASH_MAX; i++)
                if (strcasecmp(name, table[i].name) == 0)
                        return i;
        return -EINVAL;
}

int cnos_hash_from_tpm_alg(uint16_t alg) {
        for (int i = 0; i < _CNOS_HASH_MAX; i++)
                if (table[i].tpm_alg == alg)
                        return i;
        return -EINVAL;
}

int cnos_hash_buffer(enum cnos_hash h, const void *data, size_t len, uint8_t *out) {
        const EVP_MD *md = cnos_hash_md(h);
        unsigned int outlen = 0;

        if (!md)
                return -EINVAL;
        if (EVP_Digest(data, len, out, &outlen, md, NULL) != 1)
                return -EIO;
        return 0;
}

int cnos_pcr_extend(enum cnos_hash h, uint8_t *pcr, const uint8_t *digest) {
        const EVP_MD *md = cnos_hash_md(h);
        size_t n = cnos_hash_size(h);
        uint8_t buf[2 * CNOS_HASH_MAX_SIZE];

        if (!md)
                return -EINVAL;
        memcpy(buf, pcr, n);
        memcpy(buf + n, digest, n);
        if (EVP_Digest(buf, 2 * n, pcr, NULL, md, NULL) != 1)
                return -EIO;
        return 0;
}
