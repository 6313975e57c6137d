#!/usr/bin/env bash
# The bootstrapper's join client (bootstrapper/joinclient.c) and the evidence issuer
# (lib/attestation/issuer.c) against real software TPMs: tests/integration/itest-bootstrapper-joinclient runs a
# small join server in a thread (the real validator, a test cluster CA) and joins it - first join and
# rejoin with the same disk key, refusals that end the retry loop, resets that do not, a ticket from
# the wrong CA, a credential for another AK, a pinned TLS certificate, mutual attestation (the node
# challenges the service's AK before it sends evidence; a wrong answer ends the join, no evidence sent).
#
#   CA        one test CA for the EK certificates of both TPMs
#   tpm-node  the node's swtpm
#   tpm-joind the join server's swtpm (its evidence in mutual mode)
#
# Fresh TPMs on every run: the test extends the node's PCR 15 at its end.
# TEST_WRAPPER (e.g. "valgrind --leak-check=full --error-exitcode=1") runs the binary under a tool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
need tpm2_getcap

TEST=$BUILD/tests/itest-bootstrapper-joinclient
[ -x "$TEST" ] || fail "$TEST not built (make BUILD=$BUILD $TEST)"
read -r -a wrapper <<<"${TEST_WRAPPER:-}"

assert_tpm_clean() { # TCTI what
        local transient sessions
        transient=$(tpm2_getcap -T "$1" handles-transient)
        sessions=$(tpm2_getcap -T "$1" handles-loaded-session; tpm2_getcap -T "$1" handles-saved-session)
        assert_eq "" "$transient$sessions" "$2: no transient objects or sessions left (tpm2_getcap)"
}

swtpm_ca_setup "$T/ca" cnos-test
swtpm_instance "$T/tpm-node"
swtpm_instance "$T/tpm-joind"
tcti_node=$(swtpm_start "$T/tpm-node")
tcti_joind=$(swtpm_start "$T/tpm-joind")
cat "$T/ca/root.pem" "$T/ca/issuercert.pem" >"$T/ek-ca.pem"
echo "node: $tcti_node, join server: $tcti_joind"

CNOS_TEST_TCTI=$tcti_node CNOS_TEST_SERVER_TCTI=$tcti_joind CNOS_TEST_EK_CA=$T/ek-ca.pem TSS2_LOG=all+none \
        "${wrapper[@]}" "$TEST" >"$T/out" 2>&1 || { cat "$T/out"; fail "itest-bootstrapper-joinclient"; }
cat "$T/out"
grep -q "SKIPPED" "$T/out" && fail "tests were skipped although swtpm is there"
grep -q "PASSED  ] 10 test(s)" "$T/out" || fail "not all 10 tests passed"

# What the node logged: each attempt, why it failed, and that a refusal was not retried.
grep -qE "attempt 1: .*closed the connection.*; retrying in 0\.0[0-9]{2} s" "$T/out" || fail "no retry line for a reset"
grep -qE "attempt [0-9]+: join refused, not retrying: refused by 127\.0\.0\.1:[0-9]+: this cluster is closed" "$T/out" ||
        fail "no refusal line"
echo "ok: the node logs retries and refusals"
grep -qE "attempt 1: join service's TPM AK 000b[0-9a-f]{64} activated the node's credential" "$T/out" ||
        fail "mutual attestation: no credential round with the service's AK in the node's log"
grep -qE "join refused, not retrying: the join service's credential activation: tpm2 challenge-response: " "$T/out" ||
        fail "mutual attestation: a wrong credential answer did not end the join"
echo "ok: the node activated a credential with the service's AK, and refused a wrong answer"

assert_tpm_clean "$tcti_node" "node TPM"
assert_tpm_clean "$tcti_joind" "join server TPM"
swtpm_stop_all
assert_eq "" "$(swtpm_pids | xargs)" "no swtpm left running"
