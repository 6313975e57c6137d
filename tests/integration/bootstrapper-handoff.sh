#!/usr/bin/env bash
# The bootstrapper's steps after the disk, on the host: kubelet credentials + the kubelet STAND-IN,
# hash-pinned component downloads from a local HTTP server, PCR 15 on a swtpm
# ($BUILD/tests/itest-bootstrapper-handoff, see its header). Checked here with other tools: the
# PCR 15 value by tpm2_pcrread against `openssl dgst` of old || cluster ID.
# TEST_WRAPPER (e.g. "valgrind --leak-check=full --error-exitcode=1") runs the binary under a tool.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
need python3 tpm2_pcrread openssl xxd

TEST=$BUILD/tests/itest-bootstrapper-handoff
STANDIN=$BUILD/tests/cnos-kubelet-standin
[ -x "$TEST" ] || fail "$TEST not built"
[ -x "$STANDIN" ] || fail "$STANDIN not built"
read -r -a wrapper <<<"${TEST_WRAPPER:-}"

# an HTTP server on a free port of 127.0.0.1
mkdir -p "$T/www"
printf '#!/bin/sh\necho cnos test component\n' >"$T/www/kubelet"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$T/www" >"$T/http.log" 2>&1 &
HTTP_PID=$!
on_exit "kill $HTTP_PID 2>/dev/null || true"
for _ in $(seq 100); do grep -q 'port [0-9]' "$T/http.log" && break; sleep 0.05; done
port=$(sed -nE 's/.*port ([0-9]+).*/\1/p' "$T/http.log" | head -n 1)
[ -n "$port" ] || fail "the HTTP server did not start: $(cat "$T/http.log")"

swtpm_ca_setup "$T/ca"
swtpm_instance "$T/tpm"
tcti=$(swtpm_start "$T/tpm")

CNOS_TEST_STANDIN=$STANDIN CNOS_TEST_HTTP=http://127.0.0.1:$port CNOS_TEST_TCTI=$tcti CNOS_TEST_PCR_OUT=$T/pcr \
        TSS2_LOG=all+none "${wrapper[@]}" "$TEST" >"$T/out" 2>&1 || { cat "$T/out"; fail "itest-bootstrapper-handoff"; }
cat "$T/out"
grep -q 'PASSED  \] 4 test' "$T/out" || fail "not all four tests ran (skipped?)"

read -r old id <"$T/pcr"
want=$(printf '%s%s' "$old" "$id" | xxd -r -p | openssl dgst -sha256 -r | cut -d' ' -f1)
got=$(tpm2_pcrread -T "$tcti" sha256:15 | sed -nE 's/.*15 *: *0x([0-9A-Fa-f]+).*/\1/p' | tr 'A-F' 'a-f')
assert_eq "$want" "$got" "PCR 15 = SHA-256(old || cluster ID) (tpm2_pcrread vs openssl)"
