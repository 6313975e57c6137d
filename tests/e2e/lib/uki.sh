# Builds what the end-to-end tests boot: a tiny busybox initrd, a UKI (systemd-stub + the Debian
# kernel + that initrd) and a GPT disk whose only partition is an ESP holding the UKI as the default
# boot loader. Source it after tests/lib.sh. Every output is byte-for-byte reproducible: fixed
# timestamps (SOURCE_DATE_EPOCH), owners, file order, UUIDs and FAT serial, so a PCR measured once is
# the same on every machine of this kind.
#
#   build_pcr_initrd OUT                      initrd whose /init prints the TPM's PCRs and event log
#   build_filler_initrd OUT MIB [BASE]        initrd with MIB MiB of incompressible bytes (after BASE)
#   cpio_from_dir DIR OUT                     deterministic newc cpio, zstd-compressed
#   build_uki OUT --initrd F --cmdline S [--kernel F] [--osrel F] [--stub F]
#   build_esp_disk OUT UKI                    GPT disk: one FAT32 ESP with EFI/BOOT/BOOTX64.EFI
#   uki_default_kernel                        prints the newest /boot/vmlinuz-*-amd64

# The UKI and ESP builders are the image's own (images/lib/uki.sh).
source "${CNOS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}/images/lib/uki.sh"

UKI_BUSYBOX=${UKI_BUSYBOX:-/bin/busybox}


# Packs DIR into a newc cpio with sorted names, owner 0:0, every mtime at SOURCE_DATE_EPOCH and no
# inode or device numbers from the host (--reproducible), then compresses it with zstd.
cpio_from_dir() { # DIR OUT
        local dir=$1 out=$2
        find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
        (cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
                cpio --quiet -o -H newc -R 0:0 --reproducible) | zstd -q -19 -T1 --no-check -f -o "$out"
}

# The guest side of the measured-boot test. Its /init prints, on the console:
#   CNOS-INITRD reached
#   CNOS-PCR sha256 N HEX            for N in 0..23, read from /sys/class/tpm/tpm0/pcr-sha256/N
#   CNOS-EVENTLOG-SIZE BYTES SHA256  of /sys/kernel/security/tpm0/binary_bios_measurements
#   CNOS-EVENTLOG-BEGIN / base64 lines / CNOS-EVENTLOG-END
#   CNOS-DONE
# then powers the VM off. Failures print "CNOS-ERROR what" and power off too.
build_pcr_initrd() { # OUT
        local out=$1 root
        root=$(mktemp -d "${T:-/tmp}/initrd.XXXXXX")
        mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys"
        cp "$UKI_BUSYBOX" "$root/bin/busybox"
        ln -s busybox "$root/bin/sh"
        cat >"$root/init" <<'EOF'
#!/bin/sh
# cnos e2e: print the TPM's PCRs and the firmware event log on the console, then power off.
export PATH=/bin
busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
# Only emergencies from the kernel from now on: nothing may interleave with our lines.
echo 1 >/proc/sys/kernel/printk
echo "CNOS-INITRD reached"
die() { echo "CNOS-ERROR $*"; poweroff -f; exit 1; }
pcrs=/sys/class/tpm/tpm0/pcr-sha256
i=0
while [ ! -e "$pcrs/0" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$pcrs/0" ] || die "no $pcrs"
for i in $(seq 0 23); do
        v=$(cat "$pcrs/$i") || die "cannot read $pcrs/$i"
        echo "CNOS-PCR sha256 $i $v"
done
log=/sys/kernel/security/tpm0/binary_bios_measurements
[ -r "$log" ] || die "no $log"
cp "$log" /eventlog || die "cannot read $log"
echo "CNOS-EVENTLOG-SIZE $(wc -c </eventlog) $(sha256sum /eventlog | cut -d' ' -f1)"
echo "CNOS-EVENTLOG-BEGIN"
base64 /eventlog
echo "CNOS-EVENTLOG-END"
echo "CNOS-DONE"
poweroff -f
EOF
        # Modes from the host's umask must not leak into the archive.
        chmod 0755 "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/bin/busybox" "$root/init"
        cpio_from_dir "$root" "$out"
        rm -rf "$root"
}

# An initrd for benchmarks: MIB MiB of pseudo-random bytes from a fixed AES-CTR key (incompressible
# yet reproducible) as one file in an uncompressed newc cpio. With BASE (e.g. from build_pcr_initrd)
# the result is BASE, zero-padded to 4 bytes, followed by that cpio: the kernel unpacks concatenated
# archives, so the guest still runs BASE's /init.
build_filler_initrd() { # OUT MIB [BASE]
        local out=$1 mib=$2 base=${3:-} root pad
        root=$(mktemp -d "${T:-/tmp}/filler.XXXXXX")
        head -c "$((mib * 1024 * 1024))" /dev/zero |
                openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 >"$root/filler"
        touch -h -d "@$SOURCE_DATE_EPOCH" "$root/filler"
        {
                if [ -n "$base" ]; then
                        cat "$base"
                        pad=$(( (4 - $(stat -c %s "$base") % 4) % 4 ))
                        head -c "$pad" /dev/zero
                fi
                (cd "$root" && echo filler | cpio --quiet -o -H newc -R 0:0 --reproducible)
        } >"$out"
        rm -rf "$root"
}
