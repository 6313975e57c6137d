#!/usr/bin/env bash
# Attacks and faults on a cnos node, end to end with the real image (issue 6, cases 4-9). One state
# disk is set up by a first boot and then reused, so that only the boots each case needs run.
#   9  power loss during first-boot disk setup: QEMU is killed right after the LUKS2 format; the
#      next boot completes the setup (never reformats written data) and reaches kubelet;
#   8  the join service is down when the node boots and comes up 60 s later: the node waits
#      (backoff), then joins and reaches kubelet with its data;
#   4  the UKI's command line gains cnos.debug=1 (PCRs 4 and 11 change): join refused;
#   6  the join service enforces the manifest of another image (the azure variant): join refused;
#   5  the state disk belongs to another cluster (a service with another master secret): the node
#      reports the disk's key check, which is not the one of the key that service derives for the
#      disk's UUID: the service refuses, no key is released, the node halts;
#   7  the state disk's LUKS2 header is corrupted: the node refuses the disk before it touches it,
#      reports it unusable with its reason, the service refuses (and audits why), the node halts.
# For every refusal: the reason is in the join service's audit log and on the console, the state
# disk is byte-identical before and after, no key reaches the disk, and the node powers off instead
# of booting (no switch-root, no kubelet).
#
# CASES="5 7" runs only those (in the order above); without case 9 a plain first boot sets up the
# state disk the others reuse.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/lib/vm.sh"
source "$(dirname "$0")/lib/image.sh"
source "$(dirname "$0")/lib/node.sh"
need qemu-system-x86_64 swtpm swtpm_setup socat python3 openssl jq cryptsetup objcopy
[ -x "$BUILD/tests/cnos-kubelet-standin" ] || fail "no kubelet stand-in: run make check (it builds it)"

CASES=${CASES:-9 8 4 6 5 7}
want() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }

image_ensure
tier_start=$(date +%s)
node_cluster "$T/cluster"
node_tpm worker-1
node_joind_start
sha() { openssl dgst -sha256 -r "$1" | cut -c1-64; }

# Boots NODE's image DISK with state STATE; expects a refusal: QEMU powers off by itself, the console
# shows no switch-root and no kubelet, STATE is unchanged. PATTERN must appear on the console.
expect_refusal() { # CASE IMAGE STATE PATTERN
        local name=$1 image=$2 state=$3 pattern=$4 before log=$T/$1.log
        before=$(sha "$state")
        IMG_DISK=$image node_boot_start worker-1 "$state" "$log"
        local rc=0
        node_wait "$log" 'cnos-kubelet-standin|Switching root' 420 || rc=$?
        if [ "$rc" -eq 0 ]; then node_tail "$log"; node_kill; fail "$name: the node booted on"; fi
        [ "$rc" -eq 1 ] || { node_tail "$log"; node_kill; fail "$name: the node neither refused nor halted within 420 s"; }
        wait "$NODE_PID" 2>/dev/null || true
        node_tpm_stopped
        node_console "$log" | grep -E "$pattern" >/dev/null || { node_tail "$log"; fail "$name: console lacks /$pattern/"; }
        assert_eq "$before" "$(sha "$state")" "$name: state disk unchanged (sha256)"
        echo "ok: $name: refused, the node powered off: $(node_console "$log" | grep -E "$pattern" | head -n 1 | sed 's/^.*cnos-bootstrapper: //')"
}

# A boot that must set the disk up and reach kubelet, which writes its marker (sets marker).
setup_done() { # LOG WHAT
        node_wait "$1" 'cnos-kubelet-standin: (marker|FAIL)' 840 || true
        node_console "$1" | grep -E 'cnos-kubelet-standin: marker new' >/dev/null ||
                { node_tail "$1" 60; tail -n 5 "$JOIND_LOG" >&2; fail "$2"; }
        marker=$(node_console "$1" | sed -n 's/.*marker new \(cnos-marker-[0-9a-f]*\).*/\1/p' | head -n 1)
}

truncate -s 1G "$T/state.img"
if want 9; then
        # --- 9: power loss during first-boot setup
        node_boot_start worker-1 "$T/state.img" "$T/kill.log"
        node_wait "$T/kill.log" 'formatted LUKS2' 600 || { node_tail "$T/kill.log"; fail "case 9: no LUKS2 format seen"; }
        node_kill
        echo "case 9: QEMU killed right after the LUKS2 format"
        cryptsetup luksDump "$T/state.img" >/dev/null 2>&1 && echo "case 9: the disk holds a LUKS2 header" ||
                echo "case 9: the header did not reach the disk"
        node_boot_start worker-1 "$T/state.img" "$T/after-kill.log"
        setup_done "$T/after-kill.log" "case 9: the boot after the power loss did not complete the setup"
        echo "ok: case 9: the next boot completed the interrupted setup and reached kubelet ($(node_console "$T/after-kill.log" | grep -m1 -oE 'state disk [^:]*: (blank|LUKS2)[^;(]*'))"
else
        node_boot_start worker-1 "$T/state.img" "$T/first.log"
        setup_done "$T/first.log" "first boot: the state disk was not set up"
        echo "first boot: the state disk is set up and the node reached kubelet"
fi
node_powerdown
ready_sha=$(sha "$T/state.img")

# --- 8: the join service is down at boot, up 60 s later
if want 8; then
        node_joind_stop
        node_boot_start worker-1 "$T/state.img" "$T/late.log"
        node_wait "$T/late.log" 'attempt 2' 600 || { node_tail "$T/late.log"; fail "case 8: the node did not retry"; }
        echo "case 8: node retrying; starting the join service in 60 s"
        sleep 60
        JOIND_LISTEN_PORT=$JOIND_PORT node_joind_start
        node_wait "$T/late.log" 'cnos-kubelet-standin: (marker|FAIL)' 840 || true
        node_console "$T/late.log" | grep -E "cnos-kubelet-standin: marker found $marker" >/dev/null ||
                { node_tail "$T/late.log" 60; fail "case 8: the node did not join and read its data after the service came up"; }
        attempts=$(node_console "$T/late.log" | grep -c 'attempt [0-9]*: joining via' || true)
        echo "ok: case 8: the node waited ($attempts attempts), joined once the service was up, and read its marker"
        node_powerdown
        ready_sha=$(sha "$T/state.img")
fi

# --- 4: a changed command line (cnos.debug=1): PCR 11 (and 4) differ from the manifest
if want 4; then
        cp "$IMG/qemu/disk.raw" "$T/debug.raw"
        (
                source "$CNOS_TOP/images/lib/uki.sh"
                for s in .linux .osrel .initrd; do uki_section "$IMG/qemu/uki.efi" "$s" "$T/sec$s"; done
                build_uki "$T/debug.efi" --kernel "$T/sec.linux" --osrel "$T/sec.osrel" --initrd "$T/sec.initrd" \
                        --cmdline "$(cat "$IMG/qemu/cmdline") cnos.debug=1"
                start=$(sfdisk --json "$T/debug.raw" | jq -r '.partitiontable.partitions[0].start')
                build_esp_fat "$T/debug.esp" "$T/debug.efi" "$start"
                [ "$(stat -c %s "$T/debug.esp")" -le $(( $(sfdisk --json "$T/debug.raw" | jq -r '.partitiontable.partitions[0].size') * 512 )) ] ||
                        fail "case 4: the debug UKI does not fit the ESP"
                dd if="$T/debug.esp" of="$T/debug.raw" bs=512 seek="$start" conv=notrunc status=none
        ) || fail "case 4: cannot build the image with the changed command line"
        audit_before=$(grep -c '^audit ' "$JOIND_LOG" || true)
        expect_refusal "case 4 (cnos.debug=1 on the command line)" "$T/debug.raw" "$T/state.img" 'join refused, not retrying: refused by'
        # The UKI's bytes changed, so PCR 4 (its Authenticode digest) and PCR 11 (its .cmdline) both differ;
        # the verifier names the first.
        grep '^audit ' "$JOIND_LOG" | tail -n +"$((audit_before + 1))" | grep -E 'verdict=refused.*PCR (4|11) differs' >/dev/null ||
                { tail -n 5 "$JOIND_LOG" >&2; fail "case 4: no refusal naming PCR 4 or 11 in the audit log"; }
        echo "ok: case 4: audit: $(grep '^audit ' "$JOIND_LOG" | tail -n 1)"
fi

# --- 6: the service enforces another image's manifest
if want 6; then
        node_joind_stop
        cp "$IMG/azure/measurements.json" "$NODE_DIR/measurements.json"
        "$BIN/cnos-measure" sign --key "$NODE_DIR/manifest.key" "$NODE_DIR/measurements.json" >"$NODE_DIR/measurements.json.sig"
        JOIND_LISTEN_PORT=$JOIND_PORT node_joind_start
        expect_refusal "case 6 (manifest of another image)" "$IMG/qemu/disk.raw" "$T/state.img" 'join refused, not retrying: refused by'
        grep '^audit ' "$JOIND_LOG" | tail -n 1 | grep 'verdict=refused' >/dev/null || fail "case 6: no refusal in the audit log"
        echo "ok: case 6: audit: $(grep '^audit ' "$JOIND_LOG" | tail -n 1)"
        node_joind_stop
        cp "$IMG/qemu/measurements.json" "$NODE_DIR/measurements.json"
        "$BIN/cnos-measure" sign --key "$NODE_DIR/manifest.key" "$NODE_DIR/measurements.json" >"$NODE_DIR/measurements.json.sig"
fi

# The audit lines cnos-joind wrote since line N of its log.
audit_since() { grep '^audit ' "$JOIND_LOG" | tail -n +"$(($1 + 1))" || true; }

# --- 5: the disk of another cluster (this cluster's service, another master secret)
if want 5; then
        node_joind_stop
        disk_uuid=$(cryptsetup luksUUID "$T/state.img")
        cp "$NODE_DIR/master.secret" "$T/master.secret.a"
        (umask 077 && printf 'master-secret = %s\nsalt = %s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" >"$NODE_DIR/master.secret")
        JOIND_LISTEN_PORT=$JOIND_PORT node_joind_start
        audit_before=$(grep -c '^audit ' "$JOIND_LOG" || true)
        expect_refusal "case 5 (another cluster's state disk)" "$IMG/qemu/disk.raw" "$T/state.img" \
                'join refused, not retrying: refused by .*: state disk belongs to another cluster'
        want_line="disk=$disk_uuid verdict=refused reason=\"state disk belongs to another cluster (key check of disk $disk_uuid does not match)\""
        n=$(audit_since "$audit_before" | grep -cF "$want_line" || true)
        [ "$n" = 1 ] || { audit_since "$audit_before" >&2; fail "case 5: no audit line with: $want_line"; }
        n=$(audit_since "$audit_before" | grep -c 'verdict=accepted' || true)
        assert_eq 0 "$n" "case 5: no join accepted, no key released"
        echo "ok: case 5: audit: $(audit_since "$audit_before" | grep -F "$want_line")"
        node_joind_stop
        cp "$T/master.secret.a" "$NODE_DIR/master.secret"
fi

# --- 7: a corrupted LUKS2 header (a byte of the JSON area in both copies)
if want 7; then
        node_joind_stop
        cp "$T/state.img" "$T/corrupt.img"
        printf 'X' | dd of="$T/corrupt.img" bs=1 seek=$((4096 + 100)) conv=notrunc status=none
        printf 'X' | dd of="$T/corrupt.img" bs=1 seek=$((16384 + 4096 + 100)) conv=notrunc status=none
        JOIND_LISTEN_PORT=$JOIND_PORT node_joind_start
        audit_before=$(grep -c '^audit ' "$JOIND_LOG" || true)
        expect_refusal "case 7 (corrupted LUKS2 header)" "$IMG/qemu/disk.raw" "$T/corrupt.img" 'state disk refused, not touched'
        # The node's own refusal, word for word, is the reason in the service's audit line.
        why=$(node_console "$T/case 7 (corrupted LUKS2 header).log" | sed -n 's/.*state disk refused, not touched: //p' | head -n 1 | cut -c1-200)
        [ -n "$why" ] || fail "case 7: no refusal on the console"
        want_line="disk=- verdict=refused reason=\"node reports its state disk unusable: $why"
        n=$(audit_since "$audit_before" | grep -cF "$want_line" || true)
        [ "$n" = 1 ] || { audit_since "$audit_before" >&2; fail "case 7: no audit line with: $want_line"; }
        node_console "$T/case 7 (corrupted LUKS2 header).log" | grep -E 'join refused, not retrying: refused by .*: node reports its state disk unusable' >/dev/null ||
                fail "case 7: the node did not see the service's refusal"
        echo "ok: case 7: audit: $(audit_since "$audit_before" | grep -F "$want_line")"
fi

assert_eq "$ready_sha" "$(sha "$T/state.img")" "the node's own state disk is unchanged by every attack"
echo "node attacks: all cases passed in $(( $(date +%s) - tier_start )) s"
