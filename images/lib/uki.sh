# UKI and ESP builders shared by the image assembly (images/assemble) and the tests. Every output
# is byte-for-byte reproducible: fixed timestamps (SOURCE_DATE_EPOCH), owners, section layout, FAT
# serial and metadata, so a PCR measured once is the same on every machine of this kind.
#
#   build_uki OUT --initrd F --cmdline S [--kernel F] [--osrel F] [--stub F]
#   build_esp_fat OUT UKI HIDDEN_SECTORS      FAT32 file system holding only EFI/BOOT/BOOTX64.EFI = UKI
#   build_esp_disk OUT UKI                    GPT disk: one FAT32 ESP with EFI/BOOT/BOOTX64.EFI
#   esp_size_mib UKI                          the ESP size build_esp_fat uses for UKI
#   uki_default_kernel                        prints the newest /boot/vmlinuz-*-amd64
#
# Needs: binutils (objcopy, objdump), perl, dosfstools, mtools, fdisk (sfdisk).

# 2024-01-01: FAT cannot store dates before 1980, so 0 is not an option.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

UKI_STUB=${UKI_STUB:-/usr/lib/systemd/boot/efi/linuxx64.efi.stub}
# Section alignment for the sections we add: a page, a multiple of the stub's own 0x200.
UKI_ALIGN=${UKI_ALIGN:-4096}
# Fixed identities for the test disk (GPT disk GUID, ESP partition GUID) and every FAT volume id.
ESP_DISK_GUID=${ESP_DISK_GUID:-C05E2E00-0000-4000-8000-000000000001}
ESP_PART_GUID=${ESP_PART_GUID:-C05E2E00-0000-4000-8000-000000000002}
ESP_VOLUME_ID=${ESP_VOLUME_ID:-C05E2E01}

uki_default_kernel() {
        local k
        k=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1)
        [ -n "$k" ] && [ -r "$k" ] || { echo "uki: no readable /boot/vmlinuz-*-amd64 (install linux-image-amd64)" >&2; return 1; }
        echo "$k"
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

# The size in MiB of an ESP for UKI: the UKI plus 16 MiB, at least 64 MiB (FAT32 wants >= 65525
# clusters).
esp_size_mib() { # UKI
        local mib
        mib=$(( ($(stat -c %s "$1") + 1048575) / 1048576 + 16 ))
        [ "$mib" -ge 64 ] || mib=64
        echo "$mib"
}

# A FAT32 file system of esp_size_mib(UKI) MiB in the file OUT: fixed volume id, invariant metadata
# (mkfs.fat --invariant; mtools stamps SOURCE_DATE_EPOCH), holding only EFI/BOOT/BOOTX64.EFI = UKI.
# HIDDEN_SECTORS is the partition's first 512-byte sector on its disk, which FAT records.
build_esp_fat() { # OUT UKI HIDDEN_SECTORS
        local out=$1 uki=$2 hidden=$3 mib msg
        mib=$(esp_size_mib "$uki")
        rm -f "$out"
        msg=$(mkfs.fat --invariant -i "$ESP_VOLUME_ID" -F 32 -n ESP -h "$hidden" -C "$out" "$((mib * 1024))" 2>&1) ||
                { echo "$msg" >&2; return 1; }
        MTOOLS_SKIP_CHECK=1 mmd -i "$out" ::/EFI ::/EFI/BOOT &&
                MTOOLS_SKIP_CHECK=1 mcopy -i "$out" "$uki" ::/EFI/BOOT/BOOTX64.EFI
}

# A GPT disk (fixed disk and partition GUIDs) with a single EFI system partition at 1 MiB holding
# build_esp_fat's file system. No loop device, no mount.
build_esp_disk() { # OUT UKI
        local out=$1 uki=$2 esp_mib
        esp_mib=$(esp_size_mib "$uki")
        rm -f "$out"
        truncate -s "$(( (esp_mib + 2) * 1048576 ))" "$out"
        printf '%s\n' "label: gpt" "label-id: $ESP_DISK_GUID" "unit: sectors" "sector-size: 512" "first-lba: 2048" \
                "start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_PART_GUID, name=\"ESP\"" |
                sfdisk --quiet --no-reread --no-tell-kernel "$out" >/dev/null || return 1
        build_esp_fat "$out.esp" "$uki" 2048 || { rm -f "$out.esp"; return 1; }
        dd if="$out.esp" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
        rm -f "$out.esp"
}
