# The node image for the end-to-end tests. Source it after tests/lib.sh.
#
#   image_ensure        builds the image (every variant) unless an up-to-date one exists; sets IMG
#   image_partition DISK N OUT   copies partition N of a GPT disk image into OUT
#   uki_section UKI NAME OUT     copies a PE section (.cmdline, .initrd, ...) of a UKI into OUT

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
