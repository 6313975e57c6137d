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
#                no key material;
#   inside       decrypted on the host in user space (tests/e2e/statedisk-read: no device-mapper
#                here), the state disk is a clean ext4 with the marker and the kubelet credentials
#                (key 0600), and the node's journal (persistent on it: /var/log/journal) holds both
#                boots' bootstrapper and stand-in lines but neither the disk key, nor the master
#                secret, nor the node's private key (issue 6, case 3).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib/vm.sh"
source "$(dirname "$0")/lib/image.sh"
source "$(dirname "$0")/lib/node.sh"
need qemu-system-x86_64 swtpm swtpm_setup socat python3 openssl jq cryptsetup e2fsck debugfs journalctl perl xxd
[ -x "$BUILD/tests/cnos-kubelet-standin" ] || fail "no kubelet stand-in: run make check (it builds it)"
[ -x "$BUILD/tests/cnos-statedisk-read" ] || fail "no cnos-statedisk-read: run make check (it builds it)"

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
# The node's name: the DHCP host name QEMU hands out (the VM's name), in the certificate and in the
# kubelet's --hostname-override (the handoff's kubelet.env).
node_console "$T/boot1.log" | grep -E 'cnos-kubelet-standin: OK system:node:worker-1, .*, node name worker-1$' >/dev/null ||
        { node_console "$T/boot1.log" | grep 'cnos-kubelet-standin: OK' >&2; fail "the kubelet does not run as node worker-1 (its DHCP host name)"; }
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
# holds_bytes FILE KEYFILE: whether FILE contains KEYFILE's bytes (binary: grep -F cannot take them).
holds_bytes() {
        perl -e 'local $/; open(my $k, "<:raw", $ARGV[0]) or die; my $key = <$k>; open(my $d, "<:raw", $ARGV[1]) or die;
                my ($buf, $prev) = ("", ""); while (read($d, $buf, 1 << 20)) { my $w = $prev . $buf; exit 0 if index($w, $key) >= 0;
                $prev = substr($w, -(length($key) - 1)) } exit 1' "$2" "$1"
}
if holds_bytes "$T/state.img" "$T/key.bin"; then fail "the raw state disk holds the disk key"; fi
echo "ok: the raw state-disk file does not contain the disk key"
# The key material as text: hex (matched either case) and base64 (exact).
printf '%s\n' "$key" "$master" >"$T/secrets.hex"
printf '%s\n' "$(base64 -w0 "$T/key.bin")" "$(printf '%s' "$master" | xxd -r -p | base64 -w0)" >"$T/secrets.b64"
# count_secrets FILE...: how many lines of the files hold key material (0 when none).
count_secrets() {
        local n=0 f
        for f in "$@"; do
                n=$((n + $(grep -aciF -f "$T/secrets.hex" "$f" || true) + $(grep -acF -f "$T/secrets.b64" "$f" || true)))
        done
        echo "$n"
}
assert_eq 0 "$(count_secrets "$T/boot1.log" "$T/boot2.log" "$JOIND_LOG")" \
        "no disk key or master secret (hex or base64) in the consoles or the service's log"

# Inside the state disk, on the host: cnos-statedisk-read unlocks keyslot 0 with the service's key and
# decrypts the data segment in user space; debugfs reads the ext4 without mounting it.
t2=$(date +%s)
"$BUILD/tests/cnos-statedisk-read" --key-file "$T/key.bin" "$T/state.img" "$T/plain.img" >"$T/read.log" 2>&1 ||
        { cat "$T/read.log" >&2; fail "cnos-statedisk-read cannot decrypt the state disk with the service's key"; }
# What the kernel does at mount: replay the ext4 journal (a power cut leaves one to replay); then the
# full check, read-only. A wrong IV convention or key gives no valid ext4 at all.
rc=0
e2fsck -E journal_only -y "$T/plain.img" >"$T/e2fsck.log" 2>&1 || rc=$?
[ "$rc" -le 1 ] || { cat "$T/e2fsck.log" >&2; fail "e2fsck cannot replay the ext4 journal of the decrypted disk (exit $rc)"; }
e2fsck -fn "$T/plain.img" >"$T/e2fsck.log" 2>&1 || { cat "$T/e2fsck.log" >&2; fail "the decrypted state disk is no clean ext4"; }
echo "ok: the decrypted state disk is a clean ext4 (e2fsck -fn)"
statefs() { debugfs -R "$1" "$T/plain.img" 2>>"$T/debugfs.err"; }
statefs_errors() { grep -v '^debugfs [0-9]' "$T/debugfs.err" >&2 || true; }
assert_eq "$marker" "$(statefs 'cat /lib/cnos-kubelet-standin.marker' | tr -d '\n')" \
        "the decrypted state disk holds the boot marker the node wrote (the host's own proof of the round trip)"
for f in lib/kubelet/pki:0700 lib/kubelet/pki/kubelet-client.key:0600 lib/kubelet/kubeconfig:0600 \
        lib/kubelet/pki/kubelet-client.crt:0644 lib/kubelet/ca.crt:0644 lib/kubelet/config.yaml:0644; do
        mode=$(statefs "stat /${f%:*}" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p')
        [ "$mode" = "${f#*:}" ] || { statefs_errors; fail "/var/${f%:*} has mode ${mode:-none (missing)}, not ${f#*:}"; }
done
echo "ok: the kubelet credentials are on the state disk, the key 0600 in a 0700 directory"
statefs "dump /lib/kubelet/pki/kubelet-client.key $T/node.key" >/dev/null
openssl pkey -in "$T/node.key" -noout 2>/dev/null || fail "the node's kubelet key on the state disk is no private key"
# The node's private key as text: each base64 line of its PEM body long enough not to match by chance.
sed -n '/^-----/d; /^.\{24,\}$/p' "$T/node.key" >"$T/secrets.pem"
[ -s "$T/secrets.pem" ] || fail "no PEM body in the node's key"
if holds_bytes "$T/plain.img" "$T/key.bin"; then fail "the state disk's plaintext holds the disk key"; fi
assert_eq 0 "$(count_secrets "$T/plain.img")" "the state disk's plaintext holds no disk key or master secret (raw, hex or base64)"

# The node's journal: both boots, from the initrd's bootstrapper on (journald flushes /run into
# /var/log/journal after the switch to the real root), under the machine ID the handoff keeps.
# Even when node_powerdown had to cut the power, the lines asserted below were written at least
# 90 s before, past the kernel's 30 s dirty-page writeback.
statefs "rdump /log/journal $T" >/dev/null
[ -d "$T/journal" ] || { statefs_errors; fail "no /var/log/journal on the state disk: the node's journal is not persistent"; }
journalctl --directory="$T/journal" -o export --no-pager >"$T/journal.export" 2>"$T/journalctl.err" ||
        { cat "$T/journalctl.err" >&2; fail "journalctl cannot read the node's journal"; }
entries=$(grep -ac '^__CURSOR=' "$T/journal.export" || true)
boots=$({ grep -a '^_BOOT_ID=' "$T/journal.export" || true; } | sort -u | wc -l)
files=$(find "$T/journal" -type f -name '*.journal*' | wc -l)
jsize=$(du -sb "$T/journal" | cut -f1)
# One machine ID for both boots (the handoff keeps it on the state disk: /var/lib/dbus/machine-id),
# so the journal of every boot is in one directory, the way `journalctl -b -1` finds it.
mid=$(statefs 'cat /lib/dbus/machine-id' | tr -d '\n')
[[ $mid =~ ^[0-9a-f]{32}$ ]] || { statefs_errors; fail "no machine ID on the state disk (/var/lib/dbus/machine-id)"; }
assert_eq "$mid" "$(find "$T/journal" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" \
        "the journal of both boots is in the one directory of the node's kept machine ID"
# Not vacuous: the journal holds what the consoles showed, from both boots.
assert_eq 2 "$(grep -acE '^MESSAGE=.*handed off: cluster [0-9a-f]+;' "$T/journal.export" || true)" \
        "the node's journal holds the bootstrapper's 'handed off' line of each boot"
assert_eq 1 "$(grep -acF "MESSAGE=cnos-kubelet-standin: marker new $marker" "$T/journal.export" || true)" \
        "the node's journal holds the first boot's stand-in marker line"
assert_eq 1 "$(grep -acF "MESSAGE=cnos-kubelet-standin: marker found $marker" "$T/journal.export" || true)" \
        "the node's journal holds the second boot's stand-in marker line"
# Both the export (decompressed fields) and the raw files (what an attacker with the plaintext disk reads).
n=$(count_secrets "$T/journal.export")
n=$((n + $(grep -acF -f "$T/secrets.pem" "$T/journal.export" || true)))
n=$((n + $(find "$T/journal" -type f -exec cat {} + | grep -aciF -f "$T/secrets.hex" || true)))
n=$((n + $(find "$T/journal" -type f -exec cat {} + | grep -acF -f "$T/secrets.b64" -f "$T/secrets.pem" || true)))
assert_eq 0 "$n" "no disk key, master secret (hex or base64) or node private key (PEM body) in the node's journal"
for log in "$T/boot1.log" "$T/boot2.log"; do
        assert_eq 0 "$(grep -acF -f "$T/secrets.pem" "$log" || true)" "no node private key (PEM body) on the console ($(basename "$log"))"
done
echo "node journal: $entries entries from $boots boots in $files files, $jsize bytes; host-side disk check $(($(date +%s) - t2)) s"
rm -f "$T/plain.img" "$T/node.key"
for b in 1 2; do
        timing=$(node_console "$T/boot$b.log" | grep -o 'handed off: cluster [0-9a-f]*; .*' | sed 's/cluster [0-9a-f]*; //' || true)
        echo "bootstrapper, boot $b (1 GiB state disk): ${timing:-no timing line}"
done
echo "node lifecycle: first boot $((t1 - t0)) s to kubelet"
