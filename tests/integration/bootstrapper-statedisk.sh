#!/usr/bin/env bash
# cnos-bootstrapper with a state disk, end to end on the host against the real cnos-joind, up to the
# point the host cannot go (activating the volume needs device-mapper, which only the VM has):
#   - a blank file: the bootstrapper generates a UUID, joins with it, formats the disk; luksDump shows
#     that UUID, and the key the service derives for it (HKDF-SHA256(master, salt, "key-"+UUID), by
#     `openssl kdf`) opens keyslot 0 (`cryptsetup open --test-passphrase`); then activation fails
#     with a device-mapper message, exit 1;
#   - the same disk again: "initialising", header valid, the join uses the header's UUID; nothing
#     is reformatted (the header's sha256 before = after);
#   - a foreign (ext4) disk and a tampered (aes-cbc) header: refused by the node, which still joins
#     to report it unusable: the service refuses with the node's reason in its audit line; disk
#     unchanged, no join accepted;
#   - the disk with the key check of another key (as another cluster would have formatted it): the
#     service refuses ("state disk belongs to another cluster"), no key released, disk unchanged;
#   - the disk from the kernel command line (cnos.state=).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib/swtpm.sh"
. "$(dirname "$0")/lib/joind.sh"
need openssl base64 cryptsetup mkfs.ext4 sha256sum

JOIND=$BIN/cnos-joind
BOOT=$BIN/cnos-bootstrapper
[ -x "$JOIND" ] && [ -x "$BOOT" ] || fail "programs not built"
cd "$T"

swtpm_ca_setup "$T/ekca" cnos-sd
swtpm_instance "$T/tpm-node" --ca "$T/ekca"
tcti=$(swtpm_start "$T/tpm-node")
cat "$T/ekca/issuercert.pem" "$T/ekca/root.pem" >ek-ca.pem
joind_material sd
joind_conf 2 8 20s 5s >joind.conf
"$JOIND" --config joind.conf --ready-file "$T/ready" 2>"$T/joind.log" &
JOIND_PID=$!
on_exit 'kill "$JOIND_PID" 2>/dev/null; wait "$JOIND_PID" 2>/dev/null'
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
[ -s "$T/ready" ] || { cat "$T/joind.log"; fail "cnos-joind did not start"; }
endpoint=$(cat "$T/ready")

boot() { # DISK [args...]
        local d=$1; shift
        timeout 120 "$BOOT" --tcti "$tcti" --eventlog "" --node-name node-sd --join "$endpoint" --attempts 1 \
                --state-disk "$d" --state-mount "$T/mnt" "$@"
}
joins() { grep -c 'verdict=accepted' "$T/joind.log" || true; }

# --- first boot on a blank disk ---------------------------------------------------------------
truncate -s 96M disk.img
rc=0; boot "$T/disk.img" >out1 2>err1 || rc=$?
cat err1
assert_eq 1 "$rc" "first boot on the host: exit 1 (no device-mapper to activate)"
uuid=$(sed -nE 's/.*first boot, new disk UUID ([0-9a-f-]{36})$/\1/p' err1)
[ -n "$uuid" ] || fail "no UUID announced"
grep -q "joining as node node-sd (worker), disk $uuid" err1 || fail "the join did not carry the new UUID"
grep -q "formatted LUKS2 (aes-xts-plain64, 4096-byte sectors)" err1 || fail "not formatted"
grep -q "disk $uuid (blank)" err1 || fail "the first join did not report a blank disk"
grep -qE "state disk not opened: .*: activation: " err1 || fail "activation did not fail the expected way"
dump=$(cryptsetup luksDump disk.img)
assert_eq "$uuid" "$(sed -nE 's/^UUID:[[:space:]]+//p' <<<"$dump")" "luksDump: the header's UUID is the one joined with"
grep -q "cipher: aes-xts-plain64" <<<"$dump" && grep -q "sector: 4096" <<<"$dump" || fail "luksDump: cipher/sector"
openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$JOIND_MASTER" -kdfopt "hexsalt:$JOIND_SALT" \
        -kdfopt "info:key-$uuid" -binary HKDF >key.bin
cryptsetup open --test-passphrase --key-file key.bin disk.img || fail "the service's key for $uuid does not open the disk"
echo "ok: HKDF(master, salt, key-$uuid) opens keyslot 0 (cryptsetup --test-passphrase)"
kcv=$(printf '%s' "cnos disk key check v1:$uuid" | openssl mac -digest SHA256 -macopt "hexkey:$(xxd -p -c 64 key.bin)" HMAC | tr A-F a-f)
assert_eq "{\"type\":\"cnos-disk\",\"keyslots\":[],\"key_check\":\"$kcv\"}" "$(cryptsetup token export --token-id 0 disk.img | tr -d ' \n')" \
        "token 0: the key check, HMAC-SHA256(key, label || UUID) by openssl mac"
grep -c "$(xxd -p -c 64 key.bin)" err1 out1 "$T/joind.log" | grep -v ':0$' && fail "the disk key appears in a log"
echo "ok: the disk key is in no log"

# --- second boot: initialising, same UUID, no reformat ----------------------------------------
before=$(sha256sum disk.img | cut -d' ' -f1)
n=$(joins)
rc=0; boot "$T/disk.img" >out2 2>err2 || rc=$?
cat err2
assert_eq 1 "$rc" "second boot on the host: exit 1 (activation)"
grep -q "LUKS2, initialising, header valid, UUID $uuid" err2 || fail "not recognised as initialising"
grep -q "joining as node node-sd (worker), disk $uuid (cnos volume)" err2 || fail "the rejoin did not use the header's UUID"
grep -q "formatted" err2 && fail "reformatted"
assert_eq "$before" "$(sha256sum disk.img | cut -d' ' -f1)" "second boot: the disk is unchanged"
assert_eq $((n + 1)) "$(joins)" "second boot: one more accepted join"

# --- refused by the node, reported, refused by the service; disk unchanged ---------------------
truncate -s 96M ext4.img && mkfs.ext4 -q -F ext4.img
truncate -s 96M cbc.img
cryptsetup luksFormat -q --type luks2 --label cnos-state --subsystem cnos-ready --cipher aes-cbc-essiv:sha256 \
        --key-size 256 --sector-size 4096 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file key.bin cbc.img
for d in ext4 cbc; do
        before=$(sha256sum $d.img | cut -d' ' -f1)
        n=$(joins)
        assert_fails_with "state disk refused, not touched: .*(holds ext4|cipher: mode cbc-essiv)" "$d disk refused" boot "$T/$d.img"
        assert_eq "$before" "$(sha256sum $d.img | cut -d' ' -f1)" "$d disk unchanged"
        assert_eq "$n" "$(joins)" "$d disk: no join accepted"
        why=$(sed -n 's/.*state disk refused, not touched: //p' "$T/.err")
        c=$(grep -cF "disk=- verdict=refused reason=\"node reports its state disk unusable: $why\"" "$T/joind.log" || true)
        assert_eq 1 "$c" "$d disk: the service refused it, with the node's reason in the audit line"
        c=$(grep -c "join refused, not retrying: refused by .*: node reports its state disk unusable" "$T/.err" || true)
        assert_eq 1 "$c" "$d disk: the node saw the refusal"
done

# --- another cluster's disk: its key check is not the one of this cluster's key ---------------
cp disk.img other.img
cryptsetup token remove --token-id 0 other.img
printf '{"type":"cnos-disk","keyslots":[],"key_check":"%s"}' "$(openssl rand -hex 32)" | cryptsetup token import --token-id 0 other.img
before=$(sha256sum other.img | cut -d' ' -f1)
n=$(joins)
assert_fails_with "join refused, not retrying: refused by .*: state disk belongs to another cluster \(key check of disk $uuid does not match\)" \
        "another cluster's disk refused by the service" boot "$T/other.img"
c=$(grep -cF "disk=$uuid verdict=refused reason=\"state disk belongs to another cluster (key check of disk $uuid does not match)\"" "$T/joind.log" || true)
assert_eq 1 "$c" "another cluster's disk: the audit line names the disk and the reason"
assert_eq "$n" "$(joins)" "another cluster's disk: no join accepted"
assert_eq "$before" "$(sha256sum other.img | cut -d' ' -f1)" "another cluster's disk unchanged"

# --- the disk named on the kernel command line ------------------------------------------------
printf 'ro cnos.state=%s quiet\n' "$T/ext4.img" >cmdline
assert_fails_with "state disk .*ext4.img \(from the kernel command line\)" "cnos.state= names the disk" \
        timeout 60 "$BOOT" --tcti "$tcti" --node-name node-sd --join "$endpoint" --cmdline-file cmdline --state-mount "$T/mnt"
assert_fails_with "exclude each other" "--disk-uuid with a state disk is a usage error" \
        boot "$T/disk.img" --disk-uuid "$uuid"
assert_fails_with "not an absolute path" "a relative state disk is a usage error" \
        "$BOOT" --join "$endpoint" --state-disk disk.img

# --- integrity is the image's choice (cnos.state_integrity= on its command line) ---------------
# The disk formatted above has no integrity: an image that asks for hmac(sha256) refuses it before
# any join and leaves it as it is (never converts it); a value it does not know is an error.
before=$(sha256sum disk.img | cut -d' ' -f1)
n=$(joins)
printf 'ro cnos.state_integrity=hmac-sha256 quiet\n' >cmdline-int
assert_fails_with "state disk integrity hmac\(sha256\) \(from the kernel command line\)" "cnos.state_integrity= is read" \
        boot "$T/disk.img" --cmdline-file cmdline-int
grep -qE "state disk refused, not touched: .*integrity: \"none\", expected hmac\(sha256\)" "$T/.err" ||
        fail "a disk without integrity was not refused: $(cat "$T/.err")"
assert_eq "$before" "$(sha256sum disk.img | cut -d' ' -f1)" "integrity asked, disk without: unchanged"
assert_eq "$n" "$(joins)" "integrity asked, disk without: no join"
printf 'cnos.state_integrity=hmac-sha1\n' >cmdline-bad
assert_fails_with "cnos.state_integrity=hmac-sha1: neither hmac-sha256 nor none" "an unknown integrity is an error" \
        boot "$T/disk.img" --cmdline-file cmdline-bad
printf 'cnos.state_integrity=none\n' >cmdline-none
rc=0; boot "$T/disk.img" --cmdline-file cmdline-none >/dev/null 2>"$T/none.err" || rc=$?
grep -q "LUKS2, initialising, header valid, UUID $uuid" "$T/none.err" || fail "cnos.state_integrity=none: the disk was not accepted"
echo "ok: cnos.state_integrity=none takes the disk without integrity"

# --- the node name: a placeholder hostname (as in the initrd, which has no D-Bus for networkd to
# set the DHCP name with) gives way to the host name in systemd-networkd's DHCP lease --------------
mkdir -p leases
printf '# This is private data. Do not parse.\nADDRESS=10.0.2.15\nHOSTNAME=Worker-7\n' >leases/2
n=$(joins)
unshare -u sh -c 'hostname localhost && exec "$@"' sh \
        timeout 120 "$BOOT" --tcti "$tcti" --eventlog "" --join "$endpoint" --attempts 1 --cmdline-file /dev/null \
        --dhcp-leases "$T/leases" --state-disk "$T/disk.img" --state-mount "$T/mnt" >/dev/null 2>"$T/dhcp.err" || true
grep -q "node name worker-7 (the host name DHCP handed out)" "$T/dhcp.err" || fail "the DHCP host name was not taken: $(cat "$T/dhcp.err")"
grep -q "joining as node worker-7 (worker)" "$T/dhcp.err" || fail "the join did not use the DHCP host name"
assert_eq $((n + 1)) "$(joins)" "DHCP name: joined"
printf 'HOSTNAME=bad_name!\n' >leases/2
unshare -u sh -c 'hostname localhost && exec "$@"' sh \
        timeout 120 "$BOOT" --tcti "$tcti" --eventlog "" --join "$endpoint" --attempts 1 --cmdline-file /dev/null \
        --dhcp-leases "$T/leases" --state-disk "$T/disk.img" --state-mount "$T/mnt" >/dev/null 2>"$T/dhcp.err" || true
grep -qE "node name node-[0-9a-f]{8} \(from the disk UUID: the hostname is a placeholder\)" "$T/dhcp.err" ||
        fail "an invalid DHCP host name was not passed over: $(cat "$T/dhcp.err")"
echo "ok: a placeholder hostname: the DHCP lease's host name (lowercased), else one from the disk UUID"
