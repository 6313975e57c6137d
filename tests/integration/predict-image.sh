#!/usr/bin/env bash
# cnos-measure predict on UKIs built from the Debian systemd-stub and kernel, and on GPT disk images:
#  - PCR 11 equals systemd-measure calculate (systemd's own calculator) once its enter-initrd phase
#    extension is folded in;
#  - PCR 9 equals the chain recomputed here with iconv/openssl from the section files;
#  - --image finds the same UKI through GPT + FAT (contiguous and fragmented files);
#  - the stub version picks the model, and hostile disks and files get errors naming the problem.
source "$(dirname "$0")/../lib.sh"
source "$CNOS_TOP/tests/e2e/lib/uki.sh"
need objcopy openssl iconv xxd sfdisk mkfs.fat mcopy jq
M=$BIN/cnos-measure
MEASURE=/usr/lib/systemd/systemd-measure
export MTOOLS_SKIP_CHECK=1
cd "$T"

extend() { # PCR_HEX DIGEST_HEX [ALG]
        printf '%s%s' "$1" "$2" | xxd -r -p | openssl dgst -"${3:-sha256}" -binary | xxd -p -c 256
}
digest() { openssl dgst -"${2:-sha256}" -binary "$1" | xxd -p -c 256; }
pcr() { jq -r ".pcrs[\"$2\"]" "$1"; }

head -c 300000 /dev/urandom > initrd.img
printf 'ID=cnos\nVERSION_ID=1\n' > osrel
cmdline="console=ttyS0 cnos.test=1 roothash=0123456789abcdef"
build_uki uki.efi --initrd initrd.img --cmdline "$cmdline" --osrel osrel
"$M" predict --json --uki uki.efi > p.json
assert_eq systemd-stub-252 "$(jq -r .model p.json)" "model detected from the stub's .sdmagic"
assert_eq 7 "$(jq '.pcrs | length' p.json)" "PCRs 4, 8, 9, 11, 12, 13, 15 predicted"

# PCR 11 against systemd-measure. Its values fold in systemd-pcrphase's "enter-initrd" word.
for s in linux osrel cmdline initrd; do objcopy -O binary --only-section=.$s uki.efi sec.$s; done
for bank in sha256 sha384; do
        "$M" predict --json --alg $bank --uki uki.efi > p-$bank.json
        want=$("$MEASURE" calculate --linux=sec.linux --osrel=sec.osrel --cmdline=sec.cmdline --initrd=sec.initrd \
                --bank=$bank 2>/dev/null | sed -n '1s/^11:[a-z0-9]*=//p')
        got=$(extend "$(pcr p-$bank.json 11)" "$(printf enter-initrd | openssl dgst -$bank -binary | xxd -p -c 256)" $bank)
        assert_eq "$want" "$got" "PCR 11 ($bank) equals systemd-measure calculate"
done

# PCR 9: the load options (the .cmdline widened to UTF-16LE, plus a UTF-16 NUL), then the initrd.
lo=$({ printf '%s' "$cmdline" | iconv -f ASCII -t UTF-16LE; printf '\0\0'; } | openssl dgst -sha256 -binary | xxd -p -c 64)
p9=$(extend "$(printf '0%.0s' $(seq 64))" "$lo")
p9=$(extend "$p9" "$(digest initrd.img)")
assert_eq "$p9" "$(pcr p.json 9)" "PCR 9 equals load options + initrd chain"
assert_eq "$(printf '0%.0s' $(seq 64))" "$(pcr p.json 15)" "PCR 15 predicted zero"

# --image: the UKI as EFI/BOOT/BOOTX64.EFI in a GPT disk's ESP.
build_esp_disk disk.img uki.efi
"$M" predict --json --image disk.img > pi.json
assert_eq "$(jq -c .pcrs p.json)" "$(jq -c .pcrs pi.json)" "--image equals --uki (contiguous file)"

# A fragmented BOOTX64.EFI: free a hole before another file and point FSInfo's next-free hint at it,
# so mtools splits the UKI around the other file.
build_esp_disk frag.img uki.efi
I=frag.img@@1048576
head -c 3000 /dev/urandom > f1; head -c 3000 /dev/urandom > f2
mdel -i $I ::/EFI/BOOT/BOOTX64.EFI
mcopy -i $I f1 ::/F1; mcopy -i $I f2 ::/F2
first=$(mshowfat -i $I ::/F1 | sed 's/.*<\([0-9]*\)-.*/\1/')
mdel -i $I ::/F1
le32() { printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $((($1 >> 8) & 255)) $((($1 >> 16) & 255)) $(($1 >> 24)))"; }
le32 "$first" | dd of=frag.img bs=1 seek=$((1048576 + 512 + 492)) conv=notrunc status=none
mcopy -i $I uki.efi ::/EFI/BOOT/BOOTX64.EFI
runs=$(mshowfat -i $I ::/EFI/BOOT/BOOTX64.EFI | grep -o '<' | wc -l)
[ "$runs" -ge 2 ] || fail "could not fragment the test file ($(mshowfat -i $I ::/EFI/BOOT/BOOTX64.EFI))"
"$M" predict --json --image frag.img > pf.json
assert_eq "$(jq -c .pcrs p.json)" "$(jq -c .pcrs pf.json)" "--image equals --uki (file in $runs fragments)"

# The stub version chooses the model: under 254 the stub's own .sbat section joins PCR 11.
"$M" predict --json --stub-version 254 --uki uki.efi > p254.json
assert_eq systemd-stub-254 "$(jq -r .model p254.json)" "--stub-version 254 selects the 254 model"
assert_ne "$(pcr p.json 11)" "$(pcr p254.json 11)" "PCR 11 differs between the 252 and 254 models"
assert_eq "$(pcr p.json 4)" "$(pcr p254.json 4)" "PCR 4 does not depend on the stub model"
objcopy --remove-section .sdmagic uki.efi nomagic.efi
assert_fails_with "stub-version" "UKI without .sdmagic asks for --stub-version" "$M" predict --uki nomagic.efi
assert_fails_with "older than 252" "pre-252 stub refused" "$M" predict --stub-version 250 --uki uki.efi
assert_fails_with "no .linux" "stub without .linux is not a UKI" "$M" predict --uki "$UKI_STUB"

# Hostile and malformed disks: an error that names the structure, never a crash.
head -c 4194304 /dev/urandom > random.img
assert_fails_with "not a GPT disk image" "random bytes refused" "$M" predict --image random.img
cp disk.img badcrc.img; printf 'X' | dd of=badcrc.img bs=1 seek=$((512 + 40)) conv=notrunc status=none
assert_fails_with "GPT header at offset 0x200: CRC mismatch" "GPT header CRC checked" "$M" predict --image badcrc.img
cp disk.img badents.img; printf 'X' | dd of=badents.img bs=1 seek=$((1024 + 56)) conv=notrunc status=none
assert_fails_with "entry array .* CRC mismatch" "GPT entry array CRC checked" "$M" predict --image badents.img
head -c $((8 * 1048576)) disk.img > short.img
assert_fails_with "extends past the image end" "truncated image refused" "$M" predict --image short.img
truncate -s 70M noesp.img
printf 'label: gpt\nstart=2048, size=100000, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n' |
        sfdisk --quiet --no-reread --no-tell-kernel noesp.img >/dev/null
assert_fails_with "no EFI system partition" "disk without an ESP refused" "$M" predict --image noesp.img
build_esp_disk other.img uki.efi
mdel -i other.img@@1048576 ::/EFI/BOOT/BOOTX64.EFI
assert_fails_with "EFI/BOOT/BOOTX64.EFI: not found" "ESP without BOOTX64.EFI refused" "$M" predict --image other.img
# A FAT chain that loops: BOOTX64.EFI's first cluster points at itself.
cp disk.img loop.img
c0=$(mshowfat -i loop.img@@1048576 ::/EFI/BOOT/BOOTX64.EFI | sed 's/.*<\([0-9]*\)-.*/\1/')
le32 "$c0" | dd of=loop.img bs=1 seek=$((1048576 + 32 * 512 + c0 * 4)) conv=notrunc status=none
assert_fails_with "cluster chain" "looping FAT chain refused" "$M" predict --image loop.img
# A corrupt boot sector signature.
cp disk.img bootsig.img; printf '\0' | dd of=bootsig.img bs=1 seek=$((1048576 + 510)) conv=notrunc status=none
assert_fails_with "0x55AA" "FAT boot sector signature checked" "$M" predict --image bootsig.img
