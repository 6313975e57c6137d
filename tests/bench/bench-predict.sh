#!/usr/bin/env bash
# cnos-measure predict on a ~50 MB UKI against the strongest single-pass baseline: one SHA-256 pass
# over the same file with `openssl dgst -sha256` (SHA-NI), and against systemd-measure calculate
# (PCR 11 only) over the same sections. predict computes PCRs 4, 9 and 11: the UKI's Authenticode,
# the kernel's Authenticode and every section digest.
source "$(dirname "$0")/../lib.sh"
source "$CNOS_TOP/tests/bench/lib.sh"
source "$CNOS_TOP/tests/e2e/lib/uki.sh"
need openssl objcopy
RUNS=${RUNS:-15}
MEASURE=/usr/lib/systemd/systemd-measure
cd "$T"

kernel=$(uki_default_kernel)
build_filler_initrd initrd.img 40
printf 'console=ttyS0 root=/dev/vda2 ro\n' > cmdline.txt
printf 'ID=cnos\nNAME=cnos bench\n' > osrel.txt
build_uki uki.efi --initrd initrd.img --cmdline "$(cat cmdline.txt)" --osrel osrel.txt
build_esp_disk disk.img uki.efi
# systemd-measure reads the sections from files: extract exactly what the UKI holds.
for s in linux osrel cmdline initrd; do objcopy -O binary --only-section=.$s uki.efi sec.$s; done
size=$(stat -c %s uki.efi)
echo "UKI: $(awk -v n="$size" 'BEGIN {printf "%.1f", n / 1048576}') MiB (kernel $(stat -c %s "$kernel") B, initrd $(stat -c %s initrd.img) B)"
cat uki.efi disk.img sec.* >/dev/null   # warm the page cache for every contender

"$BIN"/cnos-measure predict --uki uki.efi >/dev/null
for i in $(seq "$RUNS"); do
        time_ns openssl dgst -sha256 uki.efi >>t.openssl
        time_ns "$BIN"/cnos-measure predict --uki uki.efi >>t.predict
        time_ns "$BIN"/cnos-measure predict --image disk.img >>t.image
        time_ns "$MEASURE" calculate --linux=sec.linux --osrel=sec.osrel --cmdline=sec.cmdline --initrd=sec.initrd --bank=sha256 >>t.measure
done
o=$(median <t.openssl) p=$(median <t.predict) i=$(median <t.image) m=$(median <t.measure)
echo "median of $RUNS interleaved runs (wall clock):"
printf '  %-52s %8s ms\n' "openssl dgst -sha256 uki.efi (1 pass, baseline)" "$(ms "$o")" \
        "systemd-measure calculate (PCR 11 only)" "$(ms "$m")" \
        "cnos-measure predict --uki (PCRs 4, 9, 11)" "$(ms "$p")" \
        "cnos-measure predict --image (GPT + FAT + same)" "$(ms "$i")"
echo "RATIO predict/openssl_dgst_sha256 = $(ratio "$p" "$o")   (goal <= 1.5)"
echo "RATIO predict/systemd_measure     = $(ratio "$p" "$m")   (goal <= 1.2)"
echo "RATIO systemd_measure/openssl     = $(ratio "$m" "$o")"
echo "RATIO predict_image/predict_uki   = $(ratio "$i" "$p")"
