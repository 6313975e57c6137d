/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "attestation/x509util.h"
#include "csr.h"
#include "fileio.h"
#include "serverpolicy.h"
#include "signature.h"

#define SIGNATURE_MAX_SIZE 4096U

int server_policy_load(const char *manifest_path, const char *signature_path, const char *pubkey_path, const char *ek_ca_path,
                       struct server_policy **ret, struct cnos_err *e) {
        _cleanup_(server_policy_freep) struct server_policy *p = NULL;
        _cleanup_free_ uint8_t *text = NULL, *sig = NULL;
        _cleanup_pkey_ EVP_PKEY *key = NULL;
        size_t text_size, sig_size;
        int r;

        if (!manifest_path || !signature_path || !pubkey_path || !ek_ca_path || !ret)
                return cnos_err_set(e, -EINVAL, "mutual attestation needs the service's manifest, its signature, the "
                                                "manifest signing key and the service's EK CA bundle");

        r = read_file(manifest_path, MANIFEST_MAX_SIZE, &text, &text_size);
        if (r < 0)
                return cnos_err_set(e, r, "reading %s: %s", manifest_path, strerror(-r));
        r = read_file(signature_path, SIGNATURE_MAX_SIZE, &sig, &sig_size);
        if (r < 0)
                return cnos_err_set(e, r, "reading %s: %s", signature_path, strerror(-r));
        r = cnos_load_verify_key(pubkey_path, &key, e);
        if (r < 0)
                return r;
        /* Nothing of the manifest is looked at before its signature holds. */
        r = cnos_verify(key, text, text_size, sig, sig_size, e);
        if (r < 0)
                return cnos_err_prefix(e, -EKEYREJECTED, "%s is not signed by %s: ", manifest_path, pubkey_path);

        p = calloc(1, sizeof(*p));
        if (!p)
                return cnos_err_set(e, -ENOMEM, "out of memory");
        r = manifest_parse((const char *) text, text_size, &p->manifest, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", manifest_path);
        r = x509_bundle_from_pem_file(ek_ca_path, &p->ek_ca, e);
        if (r < 0)
                return cnos_err_prefix(e, r, "%s: ", ek_ca_path);

        p->policy = (struct validator_policy) {
                .manifest = &p->manifest,
                .ek_ca_bundle = p->ek_ca,
        };
        *ret = TAKE_PTR(p);
        return 0;
}

void server_policy_free(struct server_policy *p) {
        if (!p)
                return;
        x509_stack_free(p->ek_ca);
        free(p);
}
