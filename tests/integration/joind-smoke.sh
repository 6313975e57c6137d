#!/usr/bin/env bash
# cnos-joind end to end on the host: the real daemon with a signed manifest, a 0600 master secret and
# a cluster CA, and a client with a real software TPM (swtpm with an EK certificate from a test CA)
# speaking the protocol through the shared node-side code ($BUILD/tests/itest-joind-smoke, see its
# header). Checked here with tools other than the code under test:
#
#   start-up refusals     bad manifest signature, a missing signature, a secret file with mode 0644,
#                         a missing CA key, an invalid component: each exits non-zero naming it
#   join                  ticket: disk key and cluster ID equal `openssl kdf` HKDF-SHA256 of the
#                         secret file's values; node certificate verified by `openssl verify` with
#                         the CA, subject and clientAuth by `openssl x509`; endpoint and components
#   rejoin                same disk UUID -> same disk key; another UUID -> another key
#   mutual attestation    the service presents its own swtpm's evidence, the client validates it and
#                         challenges the service's AK (credential to its certified EK), which its TPM
#                         activates; a credential for another AK name is refused by the service
#   unexpected challenge  a challenge the service did not invite (no server evidence) is refused
#   bound node            after PCR 15 is extended with the cluster ID, the next join is refused
#   audit                 one line per decision, never the disk key
#   SIGTERM               exits 0 ("stopped")
#
# TEST_WRAPPER (e.g. "valgrind --leak-check=full --error-exitcode=1") runs the daemon and client under a tool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
need openssl base64

JOIND=$BIN/cnos-joind
CLIENT=$BUILD/tests/itest-joind-smoke
[ -x "$JOIND" ] || fail "$JOIND not built (make BUILD=$BUILD)"
[ -x "$CLIENT" ] || fail "$CLIENT not built (make BUILD=$BUILD $CLIENT)"
read -r -a wrapper <<<"${TEST_WRAPPER:-}"
cd "$T"

# ---- TPMs: one for the node, one for the join service (mutual attestation) --------------------
swtpm_ca_setup "$T/ekca" cnos-smoke
swtpm_instance "$T/tpm-node" --ca "$T/ekca"
swtpm_instance "$T/tpm-service" --ca "$T/ekca"
tcti_node=$(swtpm_start "$T/tpm-node")
tcti_service=$(swtpm_start "$T/tpm-service")
cat "$T/ekca/issuercert.pem" "$T/ekca/root.pem" >ek-ca.pem

# ---- the operator's material -----------------------------------------------------------------
master=$(openssl rand -hex 32)
salt=$(openssl rand -hex 32)
(umask 077 && printf 'master-secret = %s\nsalt = %s\n' "$master" "$salt" >master.secret)

# A fresh swtpm: PCRs 0-7 are zero. PCR 15 is not in the manifest: the service requires it zero anyway.
zero=$(printf '0%.0s' $(seq 64))
pcrs=""
for i in 0 1 2 3 4 5 6 7; do pcrs="$pcrs\"$i\":{\"expected\":\"$zero\",\"warn_only\":false},"; done
printf '{"image":{"name":"cnos-smoke","sha256":"%s","size":1,"version":"1"},"model":{"alg":"sha256","boot":"swtpm","stub_version":"none"},"pcrs":{%s},"schema":"cnos-measurements/1"}\n' \
        "$zero" "${pcrs%,}" >measurements.json
openssl ecparam -name prime256v1 -genkey -noout -out manifest.key 2>/dev/null
openssl ec -in manifest.key -pubout -out manifest.pub 2>/dev/null
openssl dgst -sha256 -sign manifest.key measurements.json | base64 -w0 >measurements.json.sig

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 \
        -subj "/CN=cnos smoke cluster CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
chmod 600 ca.key
kubelet_sha=$(printf 'kubelet' | openssl dgst -sha256 -r | cut -d' ' -f1)

cat >joind.conf <<EOF
# cnos-joind smoke test
listen = 127.0.0.1:0
manifest = $T/measurements.json
manifest-signature = $T/measurements.json.sig
manifest-key = $T/manifest.pub
ek-ca = $T/ek-ca.pem
ca-cert = $T/ca.pem
ca-key = $T/ca.key
api-endpoint = 10.0.0.1:6443
component = https://dl.example/kubelet $kubelet_sha /usr/bin/kubelet
cert-validity = 2h
workers = 4
max-connections = 16
timeout = 20s
EOF

# ---- start-up refusals -----------------------------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out other.key 2>/dev/null
openssl dgst -sha256 -sign other.key measurements.json | base64 -w0 >bad.sig
assert_fails_with "signature does not verify" "a manifest signed by another key" \
        "$JOIND" --config joind.conf --secret-file master.secret --manifest-signature bad.sig
assert_fails_with "manifest signature .*cannot read" "a missing manifest signature" \
        "$JOIND" --config joind.conf --secret-file master.secret --manifest-signature "$T/missing.sig"
cp master.secret open.secret && chmod 644 open.secret
assert_fails_with "mode 0644" "a world-readable secret file" "$JOIND" --config joind.conf --secret-file open.secret
assert_fails_with "CA key: .*No such file" "a missing CA key" "$JOIND" --config joind.conf --secret-file master.secret --ca-key "$T/missing.key"
assert_fails_with "64 hex digits" "a component without a valid sha256" \
        "$JOIND" --config joind.conf --secret-file master.secret --component "https://dl.example/kubelet abc /usr/bin/kubelet"
assert_fails_with "not an absolute" "a component with a relative install path" \
        "$JOIND" --config joind.conf --secret-file master.secret --component "https://dl.example/kubelet $kubelet_sha usr/bin/kubelet"

# ---- the daemon ------------------------------------------------------------------------------
assert_fails_with "exactly one of secret-file or secret-fd" "no master secret" "$JOIND" --config joind.conf
# The secret comes through a descriptor here (the start-ups above read the file).
"${wrapper[@]}" "$JOIND" --config joind.conf --secret-fd 3 --attest-tcti "$tcti_service" --ready-file "$T/ready" \
        3<master.secret 2>"$T/joind.log" &
JOIND_PID=$!
on_exit 'kill "$JOIND_PID" 2>/dev/null; wait "$JOIND_PID" 2>/dev/null'
for _ in $(seq 200); do
        [ -s "$T/ready" ] && break
        kill -0 "$JOIND_PID" 2>/dev/null || { cat "$T/joind.log" >&2; fail "cnos-joind exited during start-up"; }
        sleep 0.05
done
[ -s "$T/ready" ] || { cat "$T/joind.log" >&2; fail "cnos-joind never became ready"; }
endpoint=$(cat "$T/ready")
case $endpoint in 127.0.0.1:[1-9]*) ;; *) fail "ready file holds '$endpoint'" ;; esac
grep -q "ready: listening on $endpoint" "$T/joind.log" || fail "no ready line naming $endpoint"
echo "ok: cnos-joind ready on $endpoint"

client() { # OUTDIR DISK EXPECT [VAR=VALUE...]
        local out=$1 disk=$2 expect=$3
        shift 3
        mkdir -p "$out"
        env CNOS_JOIND_ENDPOINT="$endpoint" CNOS_JOIND_TCTI="$tcti_node" CNOS_JOIND_DISK="$disk" \
                CNOS_JOIND_EXPECT="$expect" CNOS_JOIND_OUT="$out" CNOS_JOIND_EK_CA="$T/ek-ca.pem" "$@" \
                "${wrapper[@]}" "$CLIENT" >"$out/client.log" 2>&1 ||
                { cat "$out/client.log" >&2; tail -n 20 "$T/joind.log" >&2; fail "client ($expect) failed"; }
}

hkdf() { # INFO -> hex
        openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$master" -kdfopt "hexsalt:$salt" \
                -kdfopt "info:$1" HKDF | tr -d ':\n' | tr 'A-F' 'a-f'
}

disk=3f2504e0-4f89-41d3-9a0c-0305e82c3301
client "$T/j1" "$disk" ticket
assert_eq "$(hkdf "key-$disk")" "$(cat "$T/j1/disk-key.hex")" "disk key = HKDF-SHA256(master, salt, key-<uuid>) (openssl kdf)"
assert_eq "$(hkdf clusterID)" "$(cat "$T/j1/cluster-id.hex")" "cluster ID = HKDF-SHA256(master, salt, clusterID)"
assert_eq "$salt" "$(cat "$T/j1/salt.hex")" "measurement salt"
assert_eq "10.0.0.1:6443" "$(cat "$T/j1/endpoint")" "API endpoint"
assert_eq "https://dl.example/kubelet $kubelet_sha /usr/bin/kubelet" "$(cat "$T/j1/components")" "components"
openssl x509 -inform DER -in "$T/j1/ca.der" -out "$T/j1/ca.pem"
cmp -s <(openssl x509 -in ca.pem -outform DER) "$T/j1/ca.der" || fail "the ticket's CA is not the cluster CA"
openssl x509 -inform DER -in "$T/j1/node.der" -out "$T/j1/node.pem"
assert_eq "$T/j1/node.pem: OK" "$(openssl verify -CAfile ca.pem -purpose sslclient "$T/j1/node.pem" 2>&1)" \
        "node certificate verifies with the cluster CA for client auth"
subject=$(openssl x509 -in "$T/j1/node.pem" -noout -subject -nameopt RFC2253)
assert_eq "subject=CN=system:node:smoke-node,O=system:nodes" "$subject" "node certificate subject"
openssl x509 -in "$T/j1/node.pem" -noout -ext extendedKeyUsage | grep -q "TLS Web Client Authentication" ||
        fail "no clientAuth EKU"
echo "ok: node certificate has EKU clientAuth"

client "$T/j2" "$disk" ticket
assert_eq "$(cat "$T/j1/disk-key.hex")" "$(cat "$T/j2/disk-key.hex")" "rejoin: same disk key for the same disk"
client "$T/j3" 9b1f5a2c-7e3d-4c8b-8a6f-1d2e3f4a5b6c ticket
assert_ne "$(cat "$T/j1/disk-key.hex")" "$(cat "$T/j3/disk-key.hex")" "another disk, another key"

client "$T/m1" "$disk" ticket CNOS_JOIND_MUTUAL=1
grep -q "join service's TPM evidence verified" "$T/m1/client.log" || fail "mutual attestation did not verify the service"
grep -q "join service's TPM AK activated the credential: accepted" "$T/m1/client.log" ||
        fail "mutual attestation: no credential round with the service's AK"
echo "ok: mutual attestation: the client verified the service's evidence and activated its AK, then joined"
client "$T/m2" "$disk" "refusal:this service's TPM cannot activate the client's credential" CNOS_JOIND_MUTUAL=foreign-ak
echo "ok: mutual attestation: the service refuses a credential for another AK"
client "$T/u1" "$disk" "refusal:got challenge" CNOS_JOIND_CHALLENGE=1
echo "ok: the service refuses a challenge it did not invite"

client "$T/b1" "$disk" ticket CNOS_JOIND_BIND=1
client "$T/b2" "$disk" "refusal:PCR 15 is not zero"
echo "ok: a node bound to a cluster (PCR 15 extended) cannot join again"

# ---- audit trail -----------------------------------------------------------------------------
accepted=$(grep -c "^audit node=smoke-node peer=127.0.0.1:[0-9]* tee=tpm2 disk=[0-9a-f-]* verdict=accepted reason=\"joined as worker\"" "$T/joind.log" || true)
assert_eq 5 "$accepted" "one audit line per accepted join (5 joins)"
refused=$(grep -c '^audit .*verdict=refused reason="tpm2 pcr15: ' "$T/joind.log" || true)
assert_eq 1 "$refused" "the refusal audited with its reason"
refused=$(grep -c "^audit .*verdict=refused reason=\"this service's TPM cannot activate the client's credential: " "$T/joind.log" || true)
assert_eq 1 "$refused" "the refused credential audited"
refused=$(grep -c '^audit .*verdict=refused reason="bad evidence message: .*got challenge' "$T/joind.log" || true)
assert_eq 1 "$refused" "the unexpected challenge audited"
for f in "$T"/*/disk-key.hex "$T"/*/cluster-id.hex; do
        ! grep -q "$(cut -c1-16 "$f")" "$T/joind.log" || fail "a key appears in the daemon's log"
done
! grep -qi "$master" "$T/joind.log" || fail "the master secret appears in the daemon's log"
echo "ok: no key or secret in the daemon's output"

# ---- SIGTERM ---------------------------------------------------------------------------------
kill -TERM "$JOIND_PID"
rc=0
wait "$JOIND_PID" || rc=$?
assert_eq 0 "$rc" "cnos-joind exits 0 on SIGTERM"
grep -q "cnos-joind: stopped" "$T/joind.log" || fail "no 'stopped' line"
swtpm_stop_all
assert_eq "" "$(swtpm_pids | xargs)" "no swtpm left running"
