# The node image for the end-to-end tests. Source it after tests/lib.sh.
#
#   image_ensure        builds the image (every variant) unless an up-to-date one exists; sets IMG
#   image_partition DISK N OUT   copies partition N of a GPT disk image into OUT
#   uki_section UKI NAME OUT     copies a PE section (.cmdline, .initrd, ...) of a UKI into OUT
#   image_with_cmdline OUT EXTRA the qemu variant's disk with EXTRA appended to its UKI's command line
#                                (the same kernel, initrd and os-release; PCRs 4 and 11 change)

IMG_VARIANTS=${IMG_VARIANTS:-qemu azure gcp aws}

image_ensure() {
        IMG=$BUILD/images
        # shellcheck disable=SC2086
        if ! BUILD=$BUILD IMAGE_OUT=$IMG "$CNOS_TOP/images/build" --if-stale $IMG_VARIANTS >"$T/image-build.log" 2>&1; then
                tail -n 40 "$T/image-build.log" >&2
                fail "make image failed"
        fi
        grep -E '^(IMAGE|image:)' "$T/image-build.log" || true
}

image_partition() { # DISK N OUT
        local start size
        read -r start size < <(sfdisk --json "$1" | jq -r ".partitiontable.partitions[$(($2 - 1))] | \"\\(.start) \\(.size)\"")
        [ -n "$start" ] && [ "$start" != null ] || fail "$1 has no partition $2"
        dd if="$1" of="$3" bs=1M iflag=skip_bytes,count_bytes skip=$((start * 512)) count=$((size * 512)) status=none
}

uki_section() { # UKI NAME OUT
        objcopy -O binary --only-section="$2" "$1" "$3"
        [ -s "$3" ] || fail "$1 has no $2 section"
}

image_with_cmdline() { # OUT EXTRA
        local out=$1 extra=$2 start size d
        d=$(mktemp -d "$T/uki.XXXXXX")
        cp "$IMG/qemu/disk.raw" "$out"
        (
                set -e
                source "$CNOS_TOP/images/lib/uki.sh"
                for s in .linux .osrel .initrd; do uki_section "$IMG/qemu/uki.efi" "$s" "$d/sec$s"; done
                build_uki "$d/uki.efi" --kernel "$d/sec.linux" --osrel "$d/sec.osrel" --initrd "$d/sec.initrd" \
                        --cmdline "$(cat "$IMG/qemu/cmdline") $extra"
                read -r start size < <(sfdisk --json "$out" | jq -r '.partitiontable.partitions[0] | "\(.start) \(.size)"')
                build_esp_fat "$d/esp" "$d/uki.efi" "$start"
                [ "$(stat -c %s "$d/esp")" -le $((size * 512)) ] || { echo "the UKI does not fit the ESP" >&2; exit 1; }
                dd if="$d/esp" of="$out" bs=512 seek="$start" conv=notrunc status=none
        ) || fail "cannot build the image with \"$extra\" on its command line"
        rm -rf "$d"
}
