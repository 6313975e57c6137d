#!/usr/bin/env bash
# A cnos node's normal life, end to end, with the real image (issue 6, "normal life" 1-3, and the
# image's boot check of issue 5):
#   first boot   the image boots in QEMU + OVMF + swtpm; the initrd's cnos-bootstrapper attests to a
#                real cnos-joind on the host (which enforces the image's own signed measurements, so a
#                join proves that `cnos-measure predict --image` equals what the boot measured), gets
#                its ticket, formats the blank state disk (LUKS2), mounts it on /var, extends PCR 15,
#                writes the kubelet credentials, downloads the hash-pinned kubelet STAND-IN, and
#                switches root; kubelet.service starts the stand-in, which checks the credentials and
#                writes a boot marker onto the state disk;
#   second boot  rejoins with the same disk UUID, opens the disk with the same key, and the stand-in
#                reads the marker back;
#   the host's raw state-disk file holds neither the marker nor the disk key; the console logs hold
#                no key material.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib/vm.sh"
source "$(dirname "$0")/lib/image.sh"
source "$(dirname "$0")/lib/node.sh"
need qemu-system-x86_64 swtpm swtpm_setup socat python3 openssl jq
[ -x "$BUILD/tests/cnos-kubelet-standin" ] || fail "no kubelet stand-in: run make check (it builds it)"

image_ensure
node_cluster "$T/cluster"
node_tpm worker-1
node_joind_start
truncate -s 1G "$T/state.img"

t0=$(date +%s)
node_boot_start worker-1 "$T/state.img" "$T/boot1.log"
rc=0
node_wait "$T/boot1.log" 'cnos-kubelet-standin: (OK|FAIL)' 840 || rc=$?
t1=$(date +%s)
if [ "$rc" -ne 0 ] || ! node_console "$T/boot1.log" | grep -E 'cnos-kubelet-standin: OK' >/dev/null; then
        node_tail "$T/boot1.log" 60
        echo "----- joind -----" >&2; tail -n 20 "$JOIND_LOG" >&2
        fail "first boot did not reach the kubelet stand-in (wait status $rc)"
fi
echo "first boot: kubelet stand-in started $((t1 - t0)) s after QEMU"
node_wait "$T/boot1.log" 'cnos-kubelet-standin: marker new' 60 || { node_tail "$T/boot1.log"; fail "no boot marker written"; }
marker=$(node_console "$T/boot1.log" | sed -n 's/.*cnos-kubelet-standin: marker new \(cnos-marker-[0-9a-f]*\).*/\1/p' | head -n 1)
[ -n "$marker" ] || fail "no marker token on the console"
echo "ok: first boot joined, formatted the state disk and started kubelet (stand-in); marker $marker"
grep -q 'verdict=accepted\|verdict=ok\|accepted' "$JOIND_LOG" || { tail -n 20 "$JOIND_LOG" >&2; fail "no accepted join in the audit log"; }
echo "ok: the join service accepted the node against the image's signed measurements (PCRs 4, 9, 11, ...)"
node_powerdown
echo "first boot: shut down"

node_boot_start worker-1 "$T/state.img" "$T/boot2.log"
rc=0
node_wait "$T/boot2.log" 'cnos-kubelet-standin: marker (found|new)|cnos-kubelet-standin: FAIL' 840 || rc=$?
if ! node_console "$T/boot2.log" | grep -E "cnos-kubelet-standin: marker found $marker" >/dev/null; then
        node_tail "$T/boot2.log" 60
        echo "----- joind -----" >&2; tail -n 20 "$JOIND_LOG" >&2
        fail "second boot did not read back the marker (wait status $rc)"
fi
echo "ok: second boot rejoined, opened the state disk and read the marker back"
node_powerdown

# The raw state disk on the host: ciphertext only.
if grep -qaF "$marker" "$T/state.img"; then fail "the raw state disk holds the marker in clear"; fi
echo "ok: the raw state-disk file does not contain the marker"
salt_master=$(cat "$NODE_DIR/master.secret")
master=$(echo "$salt_master" | sed -n 's/^master-secret = //p')
salt=$(echo "$salt_master" | sed -n 's/^salt = //p')
uuid=$(cryptsetup luksDump "$T/state.img" | sed -n 's/^UUID:[[:space:]]*//p')
[ -n "$uuid" ] || fail "the state disk has no LUKS2 header"
key=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt "hexkey:$master" -kdfopt "hexsalt:$salt" \
        -kdfopt "info:key-$uuid" HKDF | tr -d ':' | tr 'A-F' 'a-f')
[[ $key =~ ^[0-9a-f]{64}$ ]] || fail "cannot compute the disk key"
printf '%s' "$key" | xxd -r -p >"$T/key.bin"
echo -n "$key" | cryptsetup open --test-passphrase --key-file "$T/key.bin" "$T/state.img" ||
        fail "the key the service derives for $uuid does not open the disk"
echo "ok: the service's key for disk $uuid (HKDF, computed by openssl kdf) opens the state disk"
if perl -e 'local $/; open(my $k, "<:raw", $ARGV[0]) or die; my $key = <$k>; open(my $d, "<:raw", $ARGV[1]) or die;
        my ($buf, $prev) = ("", ""); while (read($d, $buf, 1 << 20)) { my $w = $prev . $buf; exit 0 if index($w, $key) >= 0;
        $prev = substr($w, -31) } exit 1' "$T/key.bin" "$T/state.img"; then
        fail "the raw state disk holds the disk key"
fi
echo "ok: the raw state-disk file does not contain the disk key"
b64=$(base64 -w0 "$T/key.bin")
for log in "$T/boot1.log" "$T/boot2.log" "$JOIND_LOG"; do
        if grep -qiF -e "$key" -e "$b64" -e "$master" "$log"; then fail "$(basename "$log") holds key material"; fi
done
echo "ok: no disk key or master secret (hex or base64) in the consoles or the service's log"
for b in 1 2; do
        timing=$(node_console "$T/boot$b.log" | grep -o 'handed off: cluster [0-9a-f]*; .*' | sed 's/cluster [0-9a-f]*; //' || true)
        echo "bootstrapper, boot $b (1 GiB state disk): ${timing:-no timing line}"
done
echo "node lifecycle: first boot $((t1 - t0)) s to kubelet"
