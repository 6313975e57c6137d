#!/usr/bin/env bash
# `cnos cluster create|status|destroy` end to end (issue 6, "cnos cluster create"): one worker boots
# the qemu image in QEMU + OVMF + swtpm, joins the cnos-joind that `create` started, opens its state
# disk, binds PCR 15 and starts the kubelet STAND-IN; `status` from a fresh process sees it in state
# kubelet; `destroy` leaves none of the cluster's processes (checked by pid and start time) and
# removes the directory. And the refusals: `destroy` of a directory that is not a cluster deletes
# nothing, `create` into a non-empty directory writes nothing.
#
# CNOS_IMAGE=DISK.raw boots that image instead of building one; CLUSTER_KUBELET=FILE serves another
# kubelet (stand-in) binary.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib/image.sh"
need qemu-system-x86_64 swtpm swtpm_setup socat python3 jq
[ -x "$BUILD/tests/cnos-kubelet-standin" ] || fail "no kubelet stand-in: run make check (it builds it)"
CNOS=$BIN/cnos

# --- refusals (cheap, first) ---
mkdir "$T/notacluster"
echo precious >"$T/notacluster/file"
assert_fails_with 'is not a cnos cluster directory.*nothing deleted' "destroy refuses a directory that is not a cluster" \
        "$CNOS" cluster destroy --dir "$T/notacluster"
assert_eq precious "$(cat "$T/notacluster/file")" "the refused directory keeps its file"
assert_fails_with 'is not empty' "create refuses a non-empty directory" \
        "$CNOS" cluster create --provider qemu --dir "$T/notacluster"
assert_eq "file" "$(ls -A "$T/notacluster")" "the refused create wrote nothing"
assert_fails_with 'only qemu' "create refuses another provider" "$CNOS" cluster create --provider azure --dir "$T/x"
[ ! -e "$T/x" ] || fail "a refused create made its directory"

# --- create ---
# A 10 GiB state disk (sparse): first-boot setup must not grow with the disk (no full wipe); the
# other e2e tests use 1 GiB, and both print the bootstrapper's disk time.
args=(--provider qemu --workers 1 --dir "$T/c" --timeout 15m --disk-size 10G)
if [ -z "${CNOS_IMAGE:-}" ]; then
        image_ensure # every variant: the image the other e2e tests share (built once)
        args+=(--image "$IMG/qemu/disk.raw")
fi
[ -n "${CLUSTER_KUBELET:-}" ] && args+=(--kubelet "$CLUSTER_KUBELET")
on_exit "[ -d '$T/c' ] && '$CNOS' cluster destroy --dir '$T/c' >/dev/null 2>&1"
t0=$(date +%s)
set +e
"$CNOS" cluster create "${args[@]}" 2>&1 | tee "$T/create.out"
rc=${PIPESTATUS[0]}
set -e
t1=$(date +%s)
[ "$rc" -eq 0 ] || fail "cnos cluster create exited $rc"
grep -qE '^  worker-1 +kubelet ' "$T/create.out" || fail "create did not show worker-1 reaching kubelet"
for s in initrd attested disk-open bound kubelet; do
        grep -qE "^  worker-1 +$s +\([0-9]+ s\)" "$T/create.out" || fail "create did not show the state $s"
done
grep -q 'kubelet STAND-IN' "$T/create.out" || fail "create did not say that kubelet is the stand-in"
echo "ok: create reached kubelet (the stand-in) in $((t1 - t0)) s, showing every state"
n=$(tr -d '\r' <"$T/c/worker-1/console.log" | grep -cE 'cnos-kubelet-standin: OK system:node:worker-1, .*, node name worker-1$' || true)
[ "$n" -ge 1 ] || fail "no OK from the stand-in as node worker-1 (the VM's DHCP host name) on the console"
grep -q 'verdict=accepted' "$T/c/joind.log" || fail "no accepted join in the audit log"
echo "ok: the join service accepted the node; the stand-in accepted its credentials"
timing=$(tr -d '\r' <"$T/c/worker-1/console.log" | grep -o 'handed off: cluster [0-9a-f]*; .*' | sed 's/cluster [0-9a-f]*; //' || true)
echo "bootstrapper (10 GiB state disk, first boot): ${timing:-no timing line}"

[ "$(stat -c %a "$T/c/master.secret")" = 600 ] || fail "master.secret is not 0600"
master=$(sed -n 's/^master-secret = //p' "$T/c/master.secret")
[[ $master =~ ^[0-9a-f]{64}$ ]] || fail "master.secret holds no 32-byte master secret"
for f in "$T/create.out" "$T/c/joind.log" "$T/c/worker-1/console.log" "$T/c/cluster.json"; do
        if grep -qiF "$master" "$f"; then fail "$(basename "$f") holds the master secret"; fi
done
echo "ok: master.secret is 0600 and the master secret is in no output or log"

# --- status, from a fresh process ---
"$CNOS" cluster status --dir "$T/c" | tee "$T/status.out"
grep -qE '^  worker-1 +kubelet +qemu pid [0-9]+ running, swtpm pid [0-9]+ running' "$T/status.out" ||
        fail "status does not show worker-1 in state kubelet with QEMU and swtpm running"
grep -qE '^  cnos-joind +pid [0-9]+ +running' "$T/status.out" || fail "status does not show cnos-joind running"
[ "$("$CNOS" cluster status --dir "$T/c" --json | jq -r '.nodes[0].state')" = kubelet ] || fail "status --json: not kubelet"
echo "ok: status shows worker-1 in state kubelet"

# --- destroy ---
# every process of the cluster: "pid start-time" from cluster.json
procs=$(jq -r '[.joind, .http, (.nodes[] | .qemu, .swtpm)] | .[] | "\(.pid) \(.start)"' "$T/c/cluster.json")
n=0
while read -r pid start; do
        [ "$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$pid/stat" 2>/dev/null)" = "$start" ] ||
                fail "pid $pid of the cluster is not running before destroy"
        n=$((n + 1))
done <<<"$procs"
[ "$n" -eq 4 ] || fail "cluster.json names $n processes, expected 4"
"$CNOS" cluster destroy --dir "$T/c" | tee "$T/destroy.out" || fail "cnos cluster destroy failed"
while read -r pid start; do
        if [ "$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$pid/stat" 2>/dev/null)" = "$start" ] &&
                ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
                fail "pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) still runs after destroy"
        fi
done <<<"$procs"
[ ! -e "$T/c" ] || fail "destroy left $T/c"
echo "ok: destroy stopped all $n processes (QEMU, swtpm, cnos-joind, the component server) and removed the directory"
echo "cluster: create to kubelet $((t1 - t0)) s"
