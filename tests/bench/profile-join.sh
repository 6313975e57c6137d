#!/usr/bin/env bash
# Instruction counts of cnos-joind per successful join, under valgrind's callgrind: repeatable on a
# shared, noisy machine where CPU times are not. Not part of `make bench` (it takes minutes).
#
# The daemon runs under callgrind with one worker; after WARMUP joins (first-use costs out) the
# counters are zeroed, JOINS joins run, and the counts are dumped. Prints "Ir/join" and keeps the
# profile as $BUILD/bench/callgrind.join.out for callgrind_annotate.
#
#   JOINS=20 tests/bench/profile-join.sh
source "$(dirname "$0")/../lib.sh"
source "$CNOS_TOP/tests/bench/lib.sh"
. "$CNOS_TOP/tests/integration/lib/swtpm.sh"
. "$CNOS_TOP/tests/integration/lib/joind.sh"
need openssl valgrind callgrind_control callgrind_annotate
JOINS=${JOINS:-20}
WARMUP=${WARMUP:-3}
bench_join_setup

valgrind --tool=callgrind --callgrind-out-file="$T/cg.%p" \
        "$JOIND" --listen 127.0.0.1:0 --manifest measurements.json --manifest-signature measurements.json.sig \
        --manifest-key manifest.pub --ek-ca ek-ca.pem --ca-cert ca.pem --ca-key ca.key --secret-file master.secret \
        --api-endpoint 10.0.0.1:6443 --workers 1 --timeout 600s --read-timeout 600s --ready-file "$T/ready" 2>"$T/joind.log" &
JOIND_PID=$!
on_exit 'kill "$JOIND_PID" 2>/dev/null; wait "$JOIND_PID" 2>/dev/null'
for _ in $(seq 1200); do [ -s "$T/ready" ] && break; kill -0 "$JOIND_PID" 2>/dev/null || break; sleep 0.1; done
[ -s "$T/ready" ] || { cat "$T/joind.log" >&2; fail "cnos-joind did not get ready"; }
endpoint=$(cat "$T/ready")

"$BENCH" "$endpoint" "$tcti" "$WARMUP" aaaaaaaa >/dev/null || fail "warm-up joins failed"
callgrind_control --zero "$JOIND_PID" >/dev/null
"$BENCH" "$endpoint" "$tcti" "$JOINS" bbbbbbbb >/dev/null || fail "joins failed"
callgrind_control --dump=joins "$JOIND_PID" >/dev/null
sleep 1
assert_eq "$((WARMUP + JOINS))" "$(grep -c 'verdict=accepted' "$T/joind.log" || true)" "every join accepted"
out=$(ls -t "$T"/cg.* | head -n 1)
mkdir -p "$BUILD/bench"
cp "$out" "$BUILD/bench/callgrind.join.out"
total=$(awk '/^summary:/ {print $2}' "$out")
[ -n "$total" ] || total=$(awk '/^totals:/ {print $2}' "$out")
echo "Ir over $JOINS joins: $total"
awk -v t="$total" -v n="$JOINS" 'BEGIN {printf "Ir/join: %.0f\n", t / n}'
kill -TERM "$JOIND_PID"
wait "$JOIND_PID" 2>/dev/null || true
swtpm_stop_all
