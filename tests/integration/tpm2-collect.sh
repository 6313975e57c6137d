#!/usr/bin/env bash
# TPM evidence collection (lib/attestation/tpm2.c) against two real software TPMs: the cmocka binary
# itest-tpm2-collect runs once per TPM, with the other TPM and the other CA as the "wrong" ones.
#
#   CA a, CA b     two test CAs with the same subject names and different keys (a look-alike)
#   tpm-rsa        swtpm manufactured by CA a (RSA-2048 and P-384 EK certificates; RSA storage key),
#                  plus a P-256 EK certificate from CA a written here to 0x01c0000a (followed by
#                  0xff padding), since swtpm_setup makes none
#   tpm-ecc        swtpm manufactured by CA b with --ecc (ECC storage key); no P-256 certificate,
#                  so reading one must fail with -ENOENT
#
# tpm2-tools, not the code under test, read every EK certificate for the binary's reference copies,
# and check at the end that no transient object or session is left in either TPM.
#
# TEST_WRAPPER (e.g. "valgrind --leak-check=full --error-exitcode=1") runs the binary under a tool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
need tpm2_createek tpm2_flushcontext tpm2_nvdefine tpm2_nvwrite tpm2_nvread tpm2_getcap tpm2_makecredential

ITEST=$BUILD/tests/itest-tpm2-collect
[ -x "$ITEST" ] || fail "$ITEST not built (make BUILD=$BUILD $ITEST)"
read -r -a wrapper <<<"${TEST_WRAPPER:-}"

# The EK certificates of a TPM as tpm2_nvread reads them, into DIR/ek-*.der.
export_ek_certs() { # TCTI DIR
        local idx name
        mkdir -p "$2"
        for idx in 0x01c00002:ek-rsa2048 0x01c0000a:ek-p256 0x01c00016:ek-p384; do
                name=${idx#*:}
                idx=${idx%%:*}
                if tpm2_nvreadpublic -T "$1" "$idx" >/dev/null 2>&1; then
                        tpm2_nvread -T "$1" -C o "$idx" -o "$2/$name.der" 2>/dev/null ||
                                fail "tpm2_nvread $idx"
                fi
        done
}

# A P-256 EK (template L-2, created by tpm2_createek) certified by CA and stored at 0x01c0000a.
provision_p256() { # TCTI CADIR WORKDIR
        local tcti=$1 ca=$2 w=$3
        tpm2_createek -T "$tcti" -G ecc -c "$w/ek-p256.ctx" -u "$w/ek-p256.pem" -f pem >/dev/null ||
                fail "tpm2_createek -G ecc"
        tpm2_flushcontext -T "$tcti" -t
        openssl x509 -new -force_pubkey "$w/ek-p256.pem" -subj "/CN=cnos-test P-256 EK" \
                -CA "$ca/issuercert.pem" -CAkey "$ca/signkey.pem" -set_serial 1000 -days 3650 \
                -extfile <(printf '%s\n' "basicConstraints=critical,CA:false" "keyUsage=critical,keyEncipherment") \
                -outform DER -out "$w/ek-p256-cert.der" 2>/dev/null || fail "signing the P-256 EK certificate"
        # Stored with 32 bytes of 0xff after the DER, as some TPMs pad their certificate indices: the
        # reader must return the certificate alone.
        { cat "$w/ek-p256-cert.der"; head -c 32 /dev/zero | tr '\0' '\377'; } >"$w/ek-p256-cert.nv"
        tpm2_nvdefine -T "$tcti" 0x01c0000a -C o -s "$(stat -c %s "$w/ek-p256-cert.nv")" \
                -a "ownerwrite|ownerread|authread|no_da" >/dev/null || fail "tpm2_nvdefine 0x01c0000a"
        tpm2_nvwrite -T "$tcti" 0x01c0000a -C o -i "$w/ek-p256-cert.nv" || fail "tpm2_nvwrite 0x01c0000a"
}

assert_tpm_clean() { # TCTI what
        local transient sessions
        transient=$(tpm2_getcap -T "$1" handles-transient)
        sessions=$(tpm2_getcap -T "$1" handles-loaded-session; tpm2_getcap -T "$1" handles-saved-session)
        assert_eq "" "$transient$sessions" "$2: no transient objects or sessions left (tpm2_getcap)"
}

swtpm_ca_setup "$T/ca-a" cnos-test
swtpm_ca_setup "$T/ca-b" cnos-test
swtpm_instance "$T/tpm-rsa" --ca "$T/ca-a"
swtpm_instance "$T/tpm-ecc" --ecc --ca "$T/ca-b"
tcti_rsa=$(swtpm_start "$T/tpm-rsa")
tcti_ecc=$(swtpm_start "$T/tpm-ecc")
echo "tpm-rsa: $tcti_rsa, tpm-ecc: $tcti_ecc"

provision_p256 "$tcti_rsa" "$T/ca-a" "$T/tpm-rsa"
assert_tpm_clean "$tcti_rsa" "after provisioning"
export_ek_certs "$tcti_rsa" "$T/tpm-rsa/ek"
export_ek_certs "$tcti_ecc" "$T/tpm-ecc/ek"
assert_eq "$(($(stat -c %s "$T/tpm-rsa/ek-p256-cert.der") + 32))" "$(stat -c %s "$T/tpm-rsa/ek/ek-p256.der")" \
        "0x01c0000a holds the P-256 certificate and 32 bytes of padding"
cp "$T/tpm-rsa/ek-p256-cert.der" "$T/tpm-rsa/ek/ek-p256.der" # the reference is the certificate alone
assert_eq "ek-p256.der ek-p384.der ek-rsa2048.der" "$(cd "$T/tpm-rsa/ek" && echo *)" "tpm-rsa EK certificates"
assert_eq "ek-p384.der ek-rsa2048.der" "$(cd "$T/tpm-ecc/ek" && echo *)" "tpm-ecc EK certificates"

run_itest() { # name tcti ca other-ca tpmdir other-tpmdir
        mkdir -p "$T/work-$1"
        echo "--- $ITEST on $1"
        CNOS_TEST_TCTI=$2 CNOS_TEST_CA_DIR=$3 CNOS_TEST_OTHER_CA_DIR=$4 \
                CNOS_TEST_EK_DIR=$5/ek CNOS_TEST_OTHER_EK_DIR=$6/ek CNOS_TEST_WORKDIR=$T/work-$1 \
                "${wrapper[@]}" "$ITEST" || fail "itest-tpm2-collect on $1"
        assert_tpm_clean "$2" "$1"
}
run_itest tpm-rsa "$tcti_rsa" "$T/ca-a" "$T/ca-b" "$T/tpm-rsa" "$T/tpm-ecc"
run_itest tpm-ecc "$tcti_ecc" "$T/ca-b" "$T/ca-a" "$T/tpm-ecc" "$T/tpm-rsa"

swtpm_stop_all
assert_eq "" "$(swtpm_pids | xargs)" "no swtpm left running"
