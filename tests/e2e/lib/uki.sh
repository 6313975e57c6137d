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

# 2024-01-01: FAT cannot store dates before 1980, so 0 is not an option.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

UKI_STUB=${UKI_STUB:-/usr/lib/systemd/boot/efi/linuxx64.efi.stub}
UKI_BUSYBOX=${UKI_BUSYBOX:-/bin/busybox}
# Section alignment for the sections we add: a page, a multiple of the stub's own 0x200.
UKI_ALIGN=${UKI_ALIGN:-4096}
# Fixed identities for the disk (GPT disk GUID, ESP partition GUID, FAT volume id).
ESP_DISK_GUID=${ESP_DISK_GUID:-C05E2E00-0000-4000-8000-000000000001}
ESP_PART_GUID=${ESP_PART_GUID:-C05E2E00-0000-4000-8000-000000000002}
ESP_VOLUME_ID=${ESP_VOLUME_ID:-C05E2E01}

uki_default_kernel() {
        local k
        k=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1)
        [ -n "$k" ] && [ -r "$k" ] || { echo "uki: no readable /boot/vmlinuz-*-amd64 (install linux-image-amd64)" >&2; return 1; }
        echo "$k"
}

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

# Prints the first address after every section of a PE file, rounded up to UKI_ALIGN.
_uki_end_of_sections() { # PE
        local idx name size vma rest end max=0
        while read -r idx name size vma rest; do
                case $idx in [0-9]*) ;; *) continue ;; esac
                end=$(( 0x$vma + 0x$size ))
                [ "$end" -le "$max" ] || max=$end
        done < <(objdump -h "$1")
        [ "$max" -gt 0 ] || { echo "uki: no sections in $1" >&2; return 1; }
        echo $(( (max + UKI_ALIGN - 1) / UKI_ALIGN * UKI_ALIGN ))
}

# objcopy stamps the PE header with the current time (binutils 2.40 ignores SOURCE_DATE_EPOCH there).
# Rewrite the COFF TimeDateStamp and recompute the optional header's CheckSum the way objcopy does
# (16-bit one's-complement-style sum of the file with the field zeroed, plus the file length).
_pe_set_timestamp() { # PE EPOCH
        perl - "$1" "$2" <<'EOF'
use strict; use warnings;
my ($file, $epoch) = @ARGV;
open(my $fh, '+<:raw', $file) or die "$file: $!\n";
my $buf;
sysread($fh, $buf, 0x40) == 0x40 or die "$file: short\n";
my $pe = unpack('V', substr($buf, 0x3c, 4));
sysseek($fh, $pe, 0); sysread($fh, $buf, 4) == 4 && $buf eq "PE\0\0" or die "$file: not PE\n";
my $ck = $pe + 24 + 64;
sysseek($fh, $pe + 8, 0); syswrite($fh, pack('V', $epoch)) == 4 or die;
sysseek($fh, $ck, 0); syswrite($fh, pack('V', 0)) == 4 or die;
sysseek($fh, 0, 0);
my ($sum, $len) = (0, 0);
while (1) {
        my $n = sysread($fh, $buf, 65536);
        die "$file: $!\n" unless defined $n;
        last if $n == 0;
        $len += $n;
        $buf .= "\0" if $n % 2;
        $sum += unpack('%32v*', $buf);
        $sum = ($sum & 0xffff) + ($sum >> 16) while $sum > 0xffffffff;
}
$sum = ($sum & 0xffff) + ($sum >> 16) while $sum > 0xffff;
sysseek($fh, $ck, 0); syswrite($fh, pack('V', $sum + $len)) == 4 or die;
close($fh) or die;
EOF
}

# Builds a UKI from systemd-stub with objcopy. Sections are placed one after the other past the
# stub's last section, each at a page-aligned address, in the order .osrel .cmdline .initrd .linux
# (the kernel last, as ukify does). The command line is stored exactly as given: no trailing NUL or
# newline.
build_uki() { # OUT --initrd FILE --cmdline STR [--kernel FILE] [--osrel FILE] [--stub FILE]
        local out=$1 initrd='' cmdline='' kernel='' osrel='' stub=$UKI_STUB
        shift
        while [ $# -gt 0 ]; do
                case $1 in
                --initrd) initrd=$2 ;;
                --cmdline) cmdline=$2 ;;
                --kernel) kernel=$2 ;;
                --osrel) osrel=$2 ;;
                --stub) stub=$2 ;;
                *) echo "build_uki: unknown option $1" >&2; return 2 ;;
                esac
                shift 2
        done
        [ -n "$initrd" ] || { echo "build_uki: --initrd is required" >&2; return 2; }
        [ -n "$kernel" ] || kernel=$(uki_default_kernel) || return 1
        local work
        work=$(mktemp -d "${T:-/tmp}/uki.XXXXXX")
        if [ -z "$osrel" ]; then
                osrel=$work/os-release
                printf 'ID=cnos-e2e\nNAME="cnos measured-boot test"\nVERSION_ID=0\n' >"$osrel"
        fi
        printf '%s' "$cmdline" >"$work/cmdline"

        local vma args=() name file size
        vma=$(_uki_end_of_sections "$stub") || { rm -rf "$work"; return 1; }
        for name in osrel cmdline initrd linux; do
                case $name in
                osrel) file=$osrel ;;
                cmdline) file=$work/cmdline ;;
                initrd) file=$initrd ;;
                linux) file=$kernel ;;
                esac
                size=$(stat -c %s "$file")
                args+=(--add-section ".$name=$file"
                        --change-section-vma ".$name=$(printf '0x%x' "$vma")"
                        --set-section-flags ".$name=data,readonly")
                vma=$(( (vma + size + UKI_ALIGN - 1) / UKI_ALIGN * UKI_ALIGN ))
        done
        objcopy "${args[@]}" "$stub" "$work/uki.efi" &&
                _pe_set_timestamp "$work/uki.efi" "$SOURCE_DATE_EPOCH" || { rm -rf "$work"; return 1; }
        mv "$work/uki.efi" "$out"
        rm -rf "$work"
}

# A GPT disk (fixed disk and partition GUIDs) with a single EFI system partition at 1 MiB: FAT32,
# fixed volume id, invariant metadata, holding only EFI/BOOT/BOOTX64.EFI = UKI. Written with mtools
# at an offset inside the image: no loop device, no mount.
build_esp_disk() { # OUT UKI
        local out=$1 uki=$2 uki_mib esp_mib
        uki_mib=$(( ($(stat -c %s "$uki") + 1048575) / 1048576 ))
        esp_mib=$(( uki_mib + 16 ))
        [ "$esp_mib" -ge 64 ] || esp_mib=64 # FAT32 wants >= 65525 clusters
        rm -f "$out"
        truncate -s "$(( (esp_mib + 2) * 1048576 ))" "$out"
        sfdisk --quiet --no-reread --no-tell-kernel "$out" <<EOF >/dev/null
label: gpt
label-id: $ESP_DISK_GUID
unit: sectors
sector-size: 512
first-lba: 2048
start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PART_GUID, name="ESP"
EOF
        # The image is larger than the ESP (GPT backup at the end): mkfs.fat warns about the block
        # count it was told; show its output only when it fails.
        local msg
        msg=$(mkfs.fat --invariant -i "$ESP_VOLUME_ID" -F 32 -n ESP --offset 2048 "$out" "$((esp_mib * 1024))" 2>&1) ||
                { echo "$msg" >&2; return 1; }
        local img="$out@@1048576"
        MTOOLS_SKIP_CHECK=1 mmd -i "$img" ::/EFI ::/EFI/BOOT
        MTOOLS_SKIP_CHECK=1 mcopy -i "$img" "$uki" ::/EFI/BOOT/BOOTX64.EFI
}
