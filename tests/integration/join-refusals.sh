#!/usr/bin/env bash
# The join service's refusals, end to end: the real cnos-joind (port 0, --ready-file, SIGTERM -> exit 0)
# against real swtpm instances and real TLS on 127.0.0.1, driven by $BUILD/tests/itest-join-attacks.
# Every refusal is asserted twice: the client got a Refusal and no Ticket (no key reached the node),
# and the daemon wrote exactly that `audit ... verdict=refused reason="..."` line. After each bad
# frame a normal join still succeeds (the daemon keeps serving).
#
#   success         disk key = `openssl kdf` HKDF (compared in memory by the client), kubelet
#                   certificate: `openssl verify` with the cluster CA, subject, key usages, public
#                   key = the CSR's
#   PCR             a node whose PCR 4 was extended (tpm2_pcrextend)        -> tpm2 policy
#   PCR 15          a node whose PCR 15 was extended                        -> tpm2 pcr15
#   EK CA           a node whose EK certificate comes from another (look-alike) CA -> tpm2 ek-cert
#   manifest        unsigned / signed by another key: refused at start-up (no listener, so no node
#                   can get a key; there is no connection to audit)
#   replay          evidence of connection 1 sent on connection 2           -> tpm2 nonce
#   relay (MITM)    node <-TLS-> MITM <-TLS-> cnos-joind                     -> tpm2 nonce
#   malformed       garbage body / truncated frame / oversize length prefix -> refused or closed
#   stall           half a frame, then silence: dropped after --read-timeout while others join
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
. "$(dirname "$0")/lib/joind.sh"
need openssl base64 tpm2_pcrextend

JOIND=$BIN/cnos-joind
CLIENT=$BUILD/tests/itest-join-attacks
[ -x "$JOIND" ] || fail "$JOIND not built (make BUILD=$BUILD)"
[ -x "$CLIENT" ] || fail "$CLIENT not built (make BUILD=$BUILD unit)"
cd "$T"
START=$(date +%s)

# ---- TPMs ------------------------------------------------------------------------------------
swtpm_ca_setup "$T/ekca" cnos-jt
swtpm_ca_setup "$T/otherca" cnos-jt # same names, other keys: a look-alike CA
for n in node pcr pcr15 stall; do swtpm_instance "$T/tpm-$n" --ca "$T/ekca"; done
swtpm_instance "$T/tpm-other" --ca "$T/otherca"
for n in node pcr pcr15 stall other; do
        printf -v "tcti_$n" '%s' "$(swtpm_start "$T/tpm-$n")"
done
cat "$T/ekca/issuercert.pem" "$T/ekca/root.pem" >ek-ca.pem
tpm2_pcrextend -T "$tcti_pcr" 4:sha256=$(printf 'a%.0s' $(seq 64)) >/dev/null
tpm2_pcrextend -T "$tcti_pcr15" 15:sha256=$(printf 'c%.0s' $(seq 64)) >/dev/null

# ---- the operator's material -----------------------------------------------------------------
joind_material jt
joind_conf 4 16 20s 2s >joind.conf

# ---- manifest refusals: at start-up, before any node can connect -----------------------------
openssl ecparam -name prime256v1 -genkey -noout -out other.key 2>/dev/null
openssl dgst -sha256 -sign other.key measurements.json | base64 -w0 >other.sig
: >empty.sig
assert_fails_with "signature does not verify" "manifest signed by another key: the daemon does not start" \
        "$JOIND" --config joind.conf --manifest-signature other.sig
assert_fails_with "signature is neither base64 nor DER" "unsigned manifest (empty signature): the daemon does not start" \
        "$JOIND" --config joind.conf --manifest-signature empty.sig
assert_fails_with "manifest signature .*cannot read" "unsigned manifest (no signature file): the daemon does not start" \
        "$JOIND" --config joind.conf --manifest-signature "$T/missing.sig"

# ---- the daemon ------------------------------------------------------------------------------
"$JOIND" --config joind.conf --ready-file "$T/ready" 2>"$T/joind.log" &
JOIND_PID=$!
on_exit 'kill "$JOIND_PID" 2>/dev/null; wait "$JOIND_PID" 2>/dev/null'
for _ in $(seq 200); do [ -s "$T/ready" ] && break; kill -0 "$JOIND_PID" 2>/dev/null || break; sleep 0.05; done
[ -s "$T/ready" ] || { cat "$T/joind.log" >&2; fail "cnos-joind did not get ready"; }
endpoint=$(cat "$T/ready")
echo "cnos-joind (pid $JOIND_PID) on $endpoint"

# client NAME MODE [VAR=VALUE...]: runs the itest client; its output goes to $T/NAME.log
client() {
        local name=$1 mode=$2
        shift 2
        mkdir -p "$T/$name"
        env CNOS_JT_ENDPOINT="$endpoint" CNOS_JT_TCTI="$tcti_node" CNOS_JT_MODE="$mode" CNOS_JT_OUT="$T/$name" \
                CNOS_JT_SECRET="$T/master.secret" TSS2_LOG=all+none "$@" "$CLIENT" >"$T/$name.log" 2>&1 ||
                { cat "$T/$name.log" >&2; fail "$name: the client failed"; }
        grep -q "PASSED  \] 1 test" "$T/$name.log" || { cat "$T/$name.log" >&2; fail "$name: the client did not pass"; }
        grep "^ok:\|^stall:\|^MITM" "$T/$name.log" | sed "s/^/  [$name] /" || true
}
n_audit() { grep -c -- "$1" "$T/joind.log" || true; }
# audit_mark, then audit_expect PATTERN WHAT [N]: exactly one new audit line matches; for a refusal,
# exactly N (default 0) joins were accepted since the mark
audit_mark() { MARK=$(wc -l <"$T/joind.log"); }
audit_expect() { # PATTERN what
        local n _
        for _ in $(seq 40); do
                n=$(tail -n +"$((MARK + 1))" "$T/joind.log" | grep -c -- "$1" || true)
                [ "$n" -ge 1 ] && break
                sleep 0.1
        done
        assert_eq 1 "$n" "$2: audit line /$1/"
        tail -n +"$((MARK + 1))" "$T/joind.log" | grep -- "$1" | sed 's/^/    /'
        case $1 in *verdict=refused*)
                [ "$(tail -n +"$((MARK + 1))" "$T/joind.log" | grep -c "verdict=accepted")" = "${3:-0}" ] ||
                        fail "$2: a join was accepted meanwhile" ;;
        esac
}
still_serving() { # after a bad frame, a normal join succeeds
        audit_mark
        client "$1-after" join CNOS_JT_DISK=0a0a0a0a-0000-4000-8000-00000000000a
        audit_expect 'verdict=accepted reason="joined as worker"' "the daemon still serves after $1"
}

# ---- a successful join -----------------------------------------------------------------------
disk=6f1c2a3b-4d5e-4f60-8172-8394a5b6c7d8
audit_mark
client ok join CNOS_JT_DISK=$disk
audit_expect "^audit node=jt-node peer=127.0.0.1:[0-9]* tee=tpm2 disk=$disk verdict=accepted reason=\"joined as worker\"" "join accepted"
openssl x509 -inform DER -in ok/node.der -out ok/node.pem
openssl req -inform DER -in ok/csr.der -out ok/csr.pem
assert_eq "ok/node.pem: OK" "$(openssl verify -CAfile ca.pem ok/node.pem 2>&1)" "kubelet certificate: openssl verify -CAfile ca.pem"
assert_eq "ok/node.pem: OK" "$(openssl verify -CAfile ca.pem -purpose sslclient ok/node.pem 2>&1)" "kubelet certificate: valid for TLS client auth"
assert_eq "subject=CN=system:node:jt-node,O=system:nodes" "$(openssl x509 -in ok/node.pem -noout -subject -nameopt RFC2253)" "kubelet certificate subject"
ext=$(openssl x509 -in ok/node.pem -noout -ext extendedKeyUsage,keyUsage)
grep -q "TLS Web Client Authentication" <<<"$ext" || fail "no clientAuth EKU: $ext"
grep -q "Digital Signature" <<<"$ext" || fail "no digitalSignature key usage: $ext"
! grep -q "Certificate Sign\|TLS Web Server Authentication" <<<"$ext" || fail "unexpected key usage: $ext"
echo "ok: kubelet certificate key usage: $(tr -s ' \n' ' ' <<<"$ext")"
openssl x509 -in ok/node.pem -noout -pubkey >ok/cert.pub
openssl req -in ok/csr.pem -noout -pubkey >ok/csr.pub
[ -s ok/cert.pub ] && cmp -s ok/cert.pub ok/csr.pub || fail "the certificate's public key is not the CSR's"
echo "ok: the kubelet certificate's public key is the CSR's (openssl req -pubkey = openssl x509 -pubkey)"

# ---- refusals of the evidence ----------------------------------------------------------------
audit_mark
client pcr join CNOS_JT_TCTI="$tcti_pcr" "CNOS_JT_EXPECT=refusal:tpm2 policy: PCR 4 differs"
audit_expect 'verdict=refused reason="tpm2 policy: PCR 4 differs' "PCR 4 differs from the manifest"

audit_mark
client pcr15 join CNOS_JT_TCTI="$tcti_pcr15" "CNOS_JT_EXPECT=refusal:tpm2 pcr15: PCR 15 is not zero"
audit_expect 'verdict=refused reason="tpm2 pcr15: PCR 15 is not zero' "PCR 15 already extended"

audit_mark
client ekca join CNOS_JT_TCTI="$tcti_other" "CNOS_JT_EXPECT=refusal:tpm2 ek-cert: "
audit_expect 'verdict=refused reason="tpm2 ek-cert: ' "EK certificate from another CA"

audit_mark
client replay replay
audit_expect 'verdict=accepted reason="joined as worker"' "replay: connection 1 (recording) joined"
audit_expect 'verdict=refused reason="tpm2 nonce: ' "replay: evidence of connection 1 on connection 2" 1

audit_mark
client mitm mitm
audit_expect 'verdict=refused reason="tpm2 nonce: ' "relay through a man in the middle (exporter differs)"

# ---- bad frames ------------------------------------------------------------------------------
audit_mark
client garbage garbage
audit_expect 'verdict=refused reason="bad hello message: ' "garbage body"
still_serving garbage

audit_mark
client truncated truncated
audit_expect 'verdict=refused reason="waiting for hello: ' "truncated frame, then close"
still_serving truncated

audit_mark
client oversize oversize
audit_expect 'verdict=refused reason="bad hello message: protocol: message length 1048577 from .*, expected 1..1048576"' "oversize length prefix (refused before allocating)"
still_serving oversize

# ---- a stalled client ------------------------------------------------------------------------
# read-timeout = 2s: the daemon must drop it after 2 s (+ scheduling), and join others meanwhile.
audit_mark
env CNOS_JT_ENDPOINT="$endpoint" CNOS_JT_MODE=stall CNOS_JT_STALL_MIN_MS=1800 CNOS_JT_STALL_MAX_MS=5000 \
        "$CLIENT" >"$T/stall.log" 2>&1 &
STALL_PID=$!
sleep 0.3
client during-stall join CNOS_JT_TCTI="$tcti_stall" CNOS_JT_DISK=0b0b0b0b-0000-4000-8000-00000000000b
kill -0 "$STALL_PID" 2>/dev/null || fail "the stalled client was gone before the concurrent join finished"
echo "ok: a join succeeded while a client stalled mid-message"
rc=0
wait "$STALL_PID" || rc=$?
grep "^ok:\|^stall:" "$T/stall.log" | sed 's/^/  [stall] /' || true
[ "$rc" = 0 ] || { cat "$T/stall.log" >&2; fail "stall client"; }
audit_expect 'verdict=refused reason="timeout waiting for hello' "stalled client timed out" 1

# ---- no key in any refusal, nothing in the log -----------------------------------------------
accepted=$(n_audit "verdict=accepted")
assert_eq 6 "$accepted" "accepted joins: ok, replay's connection 1, 3 still-serving checks, during-stall"
! grep -qi "$(sed -n 's/^master-secret = //p' master.secret)" "$T/joind.log" || fail "the master secret appears in the daemon's log"

# ---- SIGTERM ---------------------------------------------------------------------------------
kill -TERM "$JOIND_PID"
rc=0
wait "$JOIND_PID" || rc=$?
assert_eq 0 "$rc" "cnos-joind exits 0 on SIGTERM"
grep -q "cnos-joind: stopped" "$T/joind.log" || fail "no 'stopped' line"
swtpm_stop_all
assert_eq "" "$(swtpm_pids | xargs)" "no swtpm left running"
echo "join-refusals: $(($(date +%s) - START)) s"
