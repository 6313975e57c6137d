#!/usr/bin/env bash
# A cnos node whose image asks for an authenticated state disk (cnos.state_integrity=hmac-sha256 on
# the UKI's measured command line), end to end with the real image:
#   first boot   joins the service that enforces this image's own signed measurements, formats the
#                blank disk as LUKS2 aes-xts-plain64 + hmac(sha256) (dm-integrity, 768-bit volume
#                key), initialises every integrity tag (a sector never written would read as an I/O
#                error), creates ext4, reaches the kubelet stand-in, which writes its marker;
#   the host     luksDump shows the integrity and key size; the raw file holds no marker;
#   second boot  opens the same disk with integrity and reads the marker back;
#   tampering    one byte changed in each 4-KiB block at the start of the integrity device on the
#                host: reading the opened volume fails (I/O error) instead of returning forged
#                plaintext, the node powers off, nothing is formatted, the LUKS2 area is unchanged.
# The disk is small (256 MiB) because integrity's first boot writes all of it, under TCG.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib/vm.sh"
source "$(dirname "$0")/lib/image.sh"
source "$(dirname "$0")/lib/node.sh"
need qemu-system-x86_64 swtpm swtpm_setup socat python3 openssl jq cryptsetup objcopy sfdisk
[ -x "$BUILD/tests/cnos-kubelet-standin" ] || fail "no kubelet stand-in: run make check (it builds it)"
sha() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

image_ensure
tier_start=$(date +%s)
image_with_cmdline "$T/integrity.raw" "cnos.state_integrity=hmac-sha256"
"$BIN/cnos-measure" manifest --image "$T/integrity.raw" --name cnos-qemu-integrity --version e2e >"$T/integrity.json" ||
        fail "cnos-measure manifest --image"
node_cluster "$T/cluster" "$T/integrity.json"
node_tpm worker-1
node_joind_start
truncate -s 256M "$T/state.img"
export IMG_DISK=$T/integrity.raw

# --- first boot
t0=$(date +%s)
node_boot_start worker-1 "$T/state.img" "$T/boot1.log"
rc=0
node_wait "$T/boot1.log" 'cnos-kubelet-standin: marker (new|found)|cnos-kubelet-standin: FAIL' 900 || rc=$?
t1=$(date +%s)
if ! node_console "$T/boot1.log" | grep -E 'cnos-kubelet-standin: marker new' >/dev/null; then
        node_tail "$T/boot1.log" 60
        echo "----- joind -----" >&2; tail -n 20 "$JOIND_LOG" >&2
        fail "first boot with integrity did not reach the kubelet stand-in (wait status $rc)"
fi
node_console "$T/boot1.log" | grep -F 'state disk integrity hmac(sha256) (from the kernel command line)' >/dev/null ||
        fail "the bootstrapper did not take the integrity from the command line"
node_console "$T/boot1.log" | grep -F 'formatted LUKS2 (aes-xts-plain64, 4096-byte sectors, hmac(sha256) integrity)' >/dev/null ||
        fail "the disk was not formatted with integrity"
marker=$(node_console "$T/boot1.log" | sed -n 's/.*marker new \(cnos-marker-[0-9a-f]*\).*/\1/p' | head -n 1)
[ -n "$marker" ] || fail "no marker token on the console"
timing=$(node_console "$T/boot1.log" | grep -o 'handed off: cluster [0-9a-f]*; .*' | sed 's/cluster [0-9a-f]*; //' || true)
echo "ok: first boot formatted the 256 MiB state disk with hmac(sha256) integrity and reached kubelet in $((t1 - t0)) s; marker $marker"
echo "bootstrapper, first boot with integrity: ${timing:-no timing line}"
node_powerdown

# --- the disk, seen from the host
dump=$(cryptsetup luksDump "$T/state.img") || fail "luksDump"
grep -E '^[[:space:]]+integrity: hmac\(sha256\)' <<<"$dump" >/dev/null || { echo "$dump" >&2; fail "luksDump: no hmac(sha256) integrity"; }
grep -E '^[[:space:]]+Key:[[:space:]]+768 bits' <<<"$dump" >/dev/null || { echo "$dump" >&2; fail "luksDump: the volume key is not 768 bits"; }
grep -E '^[[:space:]]+sector: 4096' <<<"$dump" >/dev/null || fail "luksDump: not 4096-byte sectors"
echo "ok: luksDump: aes-xts-plain64, hmac(sha256) integrity, 768-bit volume key, 4096-byte sectors"
n=$(grep -caF "$marker" "$T/state.img" || true)
assert_eq 0 "$n" "the raw state disk does not hold the marker in clear"

# --- second boot
node_boot_start worker-1 "$T/state.img" "$T/boot2.log"
rc=0
node_wait "$T/boot2.log" 'cnos-kubelet-standin: marker (found|new)|cnos-kubelet-standin: FAIL' 900 || rc=$?
node_console "$T/boot2.log" | grep -E "cnos-kubelet-standin: marker found $marker" >/dev/null ||
        { node_tail "$T/boot2.log" 60; fail "second boot with integrity did not read the marker back (wait status $rc)"; }
echo "ok: second boot opened the disk with integrity and read the marker back"
node_powerdown

# --- tampering below the encryption: one byte changed in each 4-KiB block of the first 8 MiB of
# the integrity device after its superblock (dm-integrity's journal, the first tag area and the
# first data sectors, which hold the ext4 superblock the bootstrapper reads first). XTS alone would
# decrypt such a block to garbage that ext4 might take; with integrity the read itself fails.
python3 - "$T/state.img" <<'EOF' || fail "cannot tamper with the disk"
import sys
with open(sys.argv[1], "r+b") as f:
    for off in range((16 << 20) + 4096 + 100, (24 << 20), 4096):
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x5a]))
EOF
# The LUKS2 area (headers and keyslots: the first 16 MiB) must stay as it is. The integrity device
# behind it is not compared: dm-integrity itself rewrites its journal when it activates a device
# whose journal does not replay (the tampering above hits it).
luks_area() { head -c $((16 << 20)) "$T/state.img" | openssl dgst -sha256 -r | cut -c1-64; }
header_before=$(luks_area)
node_boot_start worker-1 "$T/state.img" "$T/boot3.log"
rc=0
node_wait "$T/boot3.log" 'cnos-kubelet-standin|Switching root' 900 || rc=$?
if [ "$rc" -eq 0 ]; then node_tail "$T/boot3.log"; node_kill; fail "the node booted on a tampered disk"; fi
[ "$rc" -eq 1 ] || { node_tail "$T/boot3.log"; node_kill; fail "tampered disk: the node neither refused nor halted"; }
wait "$NODE_PID" 2>/dev/null || true
node_tpm_stopped
refusal=$(node_console "$T/boot3.log" | grep -E 'cnos-bootstrapper: state disk: reading /dev/mapper/cnos-state: Input/output error' | head -n 1)
[ -n "$refusal" ] || { node_tail "$T/boot3.log"; fail "tampered disk: no I/O error reading the opened volume"; }
n=$(node_console "$T/boot3.log" | grep -cE 'formatted LUKS2|ext4 created|state disk: ready' || true)
assert_eq 0 "$n" "tampered disk: nothing formatted or re-marked"
assert_eq "$header_before" "$(luks_area)" "tampered disk: the LUKS2 headers and keyslots are unchanged"
echo "ok: tampered disk: the read failed below the file system and the node powered off: ${refusal#*cnos-bootstrapper: }"
# The witness that it was the authentication, not ext4, that refused: dm-crypt's AEAD check.
aead=$(node_console "$T/boot3.log" | grep -E 'device-mapper: crypt: .*INTEGRITY AEAD ERROR' | head -n 1 || true)
[ -n "$aead" ] || { node_tail "$T/boot3.log"; fail "tampered disk: the kernel reported no INTEGRITY AEAD ERROR"; }
echo "ok: the kernel: ${aead#*device-mapper: }"
echo "node integrity: all cases passed in $(( $(date +%s) - tier_start )) s"
