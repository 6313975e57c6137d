#!/usr/bin/env bash
# cnos-bootstrapper's retry loop, without a join service:
#   - against a closed port it logs every attempt with its reason, waits with capped, growing,
#     jittered delays between them, and gives up after --attempts with exit status 1;
#   - the endpoint comes from cnos.join= on a (test) kernel command line when --join is absent;
#   - a server that refuses ends the loop at once, even with --attempts 0 (retry forever): one
#     connection, exit status 1, "not retrying" (the refusing server is itest-bootstrapper-joinclient's
#     serve-refusal mode);
#   - usage errors exit with 2 before anything is attempted.
# The node's TPM is a swtpm: the bootstrapper prepares its evidence before it dials.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"

BOOT=$BIN/cnos-bootstrapper
SERVER=$BUILD/tests/itest-bootstrapper-joinclient
[ -x "$BOOT" ] || fail "$BOOT not built"
[ -x "$SERVER" ] || fail "$SERVER not built"
read -r -a wrapper <<<"${TEST_WRAPPER:-}"
UUID=0f0e0d0c-0b0a-4908-8706-050403020100

swtpm_ca_setup "$T/ca"
swtpm_instance "$T/tpm"
tcti=$(swtpm_start "$T/tpm")

boot() { "${wrapper[@]}" "$BOOT" --tcti "$tcti" --node-name node-r --disk-uuid "$UUID" "$@"; }

# --- usage errors: exit 2, nothing attempted ---------------------------------------------------
rc=0; boot --cmdline-file /dev/null >"$T/out" 2>"$T/err" || rc=$?
assert_eq 2 "$rc" "no endpoint anywhere: exit status"
grep -q "neither --join nor cnos.join=HOST:PORT" "$T/err" || fail "no endpoint: $(cat "$T/err")"
rc=0; boot --join 127.0.0.1:1 --disk-uuid NOT-A-UUID >"$T/out" 2>"$T/err" || rc=$?
assert_eq 2 "$rc" "bad disk UUID: exit status"
rc=0; boot --join 127.0.0.1:1 --max-backoff 0 >"$T/out" 2>"$T/err" || rc=$?
assert_eq 2 "$rc" "zero backoff: exit status"
rc=0; boot --join 127.0.0.1:1 --server-manifest /dev/null >"$T/out" 2>"$T/err" || rc=$?
assert_eq 2 "$rc" "--server-manifest without --require-server-attestation: exit status"
rc=0; boot --join 127.0.0.1:1 --require-server-attestation >"$T/out" 2>"$T/err" || rc=$?
assert_eq 2 "$rc" "--require-server-attestation without a policy: exit status"
grep -q "mutual attestation needs" "$T/err" || fail "mutual without policy: $(cat "$T/err")"
grep -q "attempt" "$T/err" && fail "usage errors must not attempt anything"

# --- a closed port: four attempts, three waits ------------------------------------------------
# Port 1 on the loopback: nothing listens there, connect() is refused at once.
printf 'BOOT_IMAGE=/vmlinuz ro "cnos.join=127.0.0.1:1" cnos.node=ignored quiet\n' >"$T/cmdline"
start=$(date +%s%N)
rc=0; boot --cmdline-file "$T/cmdline" --attempts 4 --initial-backoff 200ms --max-backoff 500ms \
        >"$T/out" 2>"$T/err" || rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
cat "$T/err"
assert_eq 1 "$rc" "closed port: exit status after the last attempt"
assert_eq "" "$(cat "$T/out")" "closed port: nothing on stdout"
grep -q "join service 127.0.0.1:1 (from the kernel command line)" "$T/err" || fail "endpoint not taken from the command line"
grep -q "joining as node node-r" "$T/err" || fail "--node-name must win over cnos.node="
assert_eq 4 "$(grep -cE '^cnos-bootstrapper: attempt [1-4] of 4: joining via 127\.0\.0\.1:1$' "$T/err")" "one line per attempt"
mapfile -t waits < <(sed -nE 's/.*attempt ([0-9]+): atls: cannot connect to 127\.0\.0\.1:1: Connection refused; retrying in ([0-9]+)\.([0-9]{3}) s$/\1 \2\3/p' "$T/err")
assert_eq 3 "${#waits[@]}" "a reason and a wait after each of the first three attempts"
# base 200, 400, 500 (capped) ms; jitter takes off at most a quarter
lo=(150 300 375) hi=(200 400 500)
for k in 0 1 2; do
        read -r n ms <<<"${waits[$k]}"
        ms=$((10#$ms))
        assert_eq $((k + 1)) "$n" "wait $k follows attempt $((k + 1))"
        [ "$ms" -ge "${lo[$k]}" ] && [ "$ms" -le "${hi[$k]}" ] ||
                fail "wait after attempt $n is $ms ms, expected ${lo[$k]}..${hi[$k]}"
        echo "ok: wait after attempt $n: $ms ms (in ${lo[$k]}..${hi[$k]})"
done
grep -qE "attempt 4: atls: cannot connect to 127\.0\.0\.1:1: Connection refused; giving up after 4 attempt\(s\)$" "$T/err" ||
        fail "no give-up line"
[ "$elapsed_ms" -ge 825 ] || fail "the waits were not taken: $elapsed_ms ms in total"
echo "ok: four attempts in $elapsed_ms ms"

# --- a refusing server: one connection, no retry, even with --attempts 0 -----------------------
"$SERVER" serve-refusal "$T/port" >"$T/server.out" 2>"$T/server.err" &
server_pid=$!
on_exit "kill $server_pid 2>/dev/null || true"
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
[ -s "$T/port" ] || fail "the refusing server did not start: $(cat "$T/server.err")"
port=$(cat "$T/port")
rc=0; timeout 60 "${wrapper[@]}" "$BOOT" --tcti "$tcti" --node-name node-1 --disk-uuid "$UUID" --join "127.0.0.1:$port" \
        --attempts 0 --initial-backoff 50ms --max-backoff 100ms >"$T/out" 2>"$T/err" || rc=$?
cat "$T/err"
assert_eq 1 "$rc" "refused: exit status"
assert_eq "" "$(cat "$T/out")" "refused: nothing on stdout"
grep -qE "attempt 1: join refused, not retrying: refused by 127\.0\.0\.1:$port: this cluster is closed$" "$T/err" ||
        fail "no refusal line"
assert_eq 1 "$(grep -c 'joining via' "$T/err")" "a refusal is not retried"
wait "$server_pid" || fail "refusing server: $(cat "$T/server.err")"
assert_eq "connections: 1" "$(cat "$T/server.out")" "the server saw exactly one connection"

swtpm_stop_all
assert_eq "" "$(swtpm_pids | xargs)" "no swtpm left running"
