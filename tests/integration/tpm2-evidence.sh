#!/usr/bin/env bash
# End-to-end TPM 2.0 evidence: the node side (lib/attestation/tpm2.c) collects from real software
# TPMs, the join side (tpm2-verify.c, tpm2-makecred.c, x509util.c) checks it, in the order a join
# service runs the steps: EK certificate chain, EK recreated against its certificate, AK,
# MakeCredential / ActivateCredential, quote over PCRs 0-23 with a nonce, event log replay, PCR
# policy. Then each way it must fail, each with its own check and message. The C side is
# $BUILD/tests/itest-tpm2-evidence (see its header); this script owns the TPMs:
#
#   CA 1         the cluster's EK CA (root + issuing intermediate): the verifier's bundle
#   CA 2         a look-alike: same subject names, other keys
#   tpm-a, tpm-b swtpm manufactured by CA 1 (RSA-2048 and P-384 EK certificates)
#   tpm-c        swtpm manufactured by CA 2
#
# The TPMs are started fresh (PCRs at their reset values) for the one run of the binary and stopped
# before the script ends, also when it fails (lib/swtpm.sh's on_exit hook).
#
# TEST_WRAPPER (e.g. "valgrind --leak-check=full --error-exitcode=1") runs the binary under a tool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
need tpm2_getcap

ITEST=$BUILD/tests/itest-tpm2-evidence
[ -x "$ITEST" ] || fail "$ITEST not built (make BUILD=$BUILD $ITEST)"
read -r -a wrapper <<<"${TEST_WRAPPER:-}"

assert_tpm_clean() { # TCTI what
        local transient sessions
        transient=$(tpm2_getcap -T "$1" handles-transient)
        sessions=$(tpm2_getcap -T "$1" handles-loaded-session; tpm2_getcap -T "$1" handles-saved-session)
        assert_eq "" "$transient$sessions" "$2: no transient objects or sessions left (tpm2_getcap)"
}

swtpm_ca_setup "$T/ca-1" cnos-test
swtpm_ca_setup "$T/ca-2" cnos-test
cat "$T/ca-1/root.pem" "$T/ca-1/issuercert.pem" >"$T/ca-1/bundle.pem"
cat "$T/ca-2/root.pem" "$T/ca-2/issuercert.pem" >"$T/ca-2/bundle.pem"
swtpm_instance "$T/tpm-a" --ca "$T/ca-1"
swtpm_instance "$T/tpm-b" --ca "$T/ca-1"
swtpm_instance "$T/tpm-c" --ca "$T/ca-2"
tcti_a=$(swtpm_start "$T/tpm-a")
tcti_b=$(swtpm_start "$T/tpm-b")
tcti_c=$(swtpm_start "$T/tpm-c")
echo "tpm-a: $tcti_a, tpm-b: $tcti_b, tpm-c (other CA): $tcti_c"

mkdir -p "$T/work"
CNOS_TEST_TCTI_A=$tcti_a CNOS_TEST_TCTI_B=$tcti_b CNOS_TEST_TCTI_OTHER_CA=$tcti_c \
        CNOS_TEST_CA_BUNDLE=$T/ca-1/bundle.pem CNOS_TEST_OTHER_CA_BUNDLE=$T/ca-2/bundle.pem \
        CNOS_TEST_WORKDIR=$T/work "${wrapper[@]}" "$ITEST" || fail "itest-tpm2-evidence"

# The binary checks this with its own code under test; here tpm2-tools confirm it independently.
assert_tpm_clean "$tcti_a" tpm-a
assert_tpm_clean "$tcti_b" tpm-b
assert_tpm_clean "$tcti_c" tpm-c

swtpm_stop_all
assert_eq "" "$(swtpm_pids | xargs)" "no swtpm left running"
