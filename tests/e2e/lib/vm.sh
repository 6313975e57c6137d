# Boots a disk image in QEMU (TCG) with OVMF and a software TPM (swtpm), and reads back what the
# guest printed on its serial console. Source it after tests/lib.sh (it uses $T and on_exit). Every
# process started here is stopped by an on_exit hook; every QEMU run is bounded by `timeout`.
#
#   vm_tpm_setup DIR            swtpm state in DIR/state, EK + platform certificates from a CA in DIR/ca
#   vm_tpm_start DIR            runs swtpm on DIR/swtpm.sock (sets VM_TPM_SOCK, VM_TPM_PID)
#   vm_boot DISK LOG            boots DISK, serial console to LOG; returns QEMU's exit status
#   vm_boot_start DISK LOG      the same in the background (sets VM_QEMU_PID); vm_boot_wait to join
#   vm_extract_pcrs LOG OUT     "N hex" lines, one per PCR the guest printed (lowercase hex)
#   vm_extract_eventlog LOG OUT the guest's binary event log, checked against its size and sha256
#
# The QEMU command line is pinned (PCR 0 depends on -smp, PCRs 0/4/7 on the firmware build): change
# it and every expected firmware PCR changes with it.

VM_TIMEOUT=${VM_TIMEOUT:-300}
VM_OVMF_CODE=${VM_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
VM_OVMF_VARS=${VM_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
VM_PCR_BANKS=${VM_PCR_BANKS:-sha256}

_vm_abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

# swtpm_setup with a private configuration: the local CA (signing key, issuer certificate, serial
# counter) lives under DIR/ca, never in /var/lib/swtpm-localca.
vm_tpm_setup() { # DIR
        local dir
        dir=$(_vm_abs "$1")
        mkdir -p "$dir/state" "$dir/ca"
        cat >"$dir/swtpm-localca.conf" <<EOF
statedir = $dir/ca
signingkey = $dir/ca/signkey.pem
issuercert = $dir/ca/issuercert.pem
certserial = $dir/ca/certserial
EOF
        cat >"$dir/swtpm-localca.options" <<EOF
--platform-manufacturer cnos
--platform-version 2.1
--platform-model QEMU
EOF
        cat >"$dir/swtpm_setup.conf" <<EOF
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $dir/swtpm-localca.conf
create_certs_tool_options = $dir/swtpm-localca.options
active_pcr_banks = $VM_PCR_BANKS
EOF
        swtpm_setup --tpm2 --tpmstate "$dir/state" --config "$dir/swtpm_setup.conf" \
                --create-ek-cert --create-platform-cert --lock-nvram --overwrite \
                --pcr-banks "$VM_PCR_BANKS" --logfile "$dir/swtpm_setup.log" >/dev/null 2>&1 ||
                { echo "vm: swtpm_setup failed:" >&2; cat "$dir/swtpm_setup.log" >&2; return 1; }
}

# swtpm as QEMU's TPM backend: a control channel on a unix socket, the state from vm_tpm_setup.
# --terminate ends it when QEMU disconnects; the on_exit hook covers every other way out.
vm_tpm_start() { # DIR
        local dir
        dir=$(_vm_abs "$1")
        VM_TPM_SOCK=$dir/swtpm.sock
        rm -f "$VM_TPM_SOCK"
        swtpm socket --tpm2 --tpmstate "dir=$dir/state" --ctrl "type=unixio,path=$VM_TPM_SOCK" \
                --log "file=$dir/swtpm.log,level=1" --terminate &
        VM_TPM_PID=$!
        on_exit "kill $VM_TPM_PID 2>/dev/null; wait $VM_TPM_PID 2>/dev/null"
        for _ in $(seq 100); do
                [ -S "$VM_TPM_SOCK" ] && return 0
                kill -0 "$VM_TPM_PID" 2>/dev/null || break
                sleep 0.05
        done
        echo "vm: swtpm did not create $VM_TPM_SOCK:" >&2
        cat "$dir/swtpm.log" >&2 2>/dev/null
        return 1
}

# The pinned machine: q35, TCG, one CPU, 2 GiB, no network, OVMF without Secure Boot with a private
# copy of its variable store, the swtpm as a TIS TPM, DISK (read-only virtio-blk) as the only boot
# option, the serial console into LOG. -no-reboot turns the guest's poweroff (or a panic with
# panic=-1) into QEMU's exit.
vm_boot_start() { # DISK LOG
        local disk log vars
        disk=$(_vm_abs "$1")
        log=$(_vm_abs "$2")
        [ -n "${VM_TPM_SOCK:-}" ] || { echo "vm: vm_tpm_start first" >&2; return 1; }
        vars=$(mktemp "${T:-/tmp}/OVMF_VARS.XXXXXX")
        cp "$VM_OVMF_VARS" "$vars"
        : >"$log"
        timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
                -M q35 -accel tcg -cpu max -smp 1 -m 2048 -nographic -nic none -no-reboot \
                -drive "if=pflash,format=raw,unit=0,readonly=on,file=$VM_OVMF_CODE" \
                -drive "if=pflash,format=raw,unit=1,file=$vars" \
                -chardev "socket,id=chrtpm,path=$VM_TPM_SOCK" \
                -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
                -drive "if=none,id=disk0,format=raw,readonly=on,file=$disk" \
                -device virtio-blk-pci,drive=disk0,bootindex=0 \
                -serial "file:$log" -monitor none </dev/null >"$log.qemu" 2>&1 &
        VM_QEMU_PID=$!
        on_exit "kill $VM_QEMU_PID 2>/dev/null; wait $VM_QEMU_PID 2>/dev/null"
}

vm_boot_wait() { # -> QEMU's exit status (124 = timed out)
        local rc=0
        wait "$VM_QEMU_PID" || rc=$?
        return "$rc"
}

vm_boot() { # DISK LOG
        vm_boot_start "$1" "$2" || return 1
        vm_boot_wait
}

# The console with CRs removed (the serial line ends lines with CRLF).
_vm_console() { tr -d '\r' <"$1"; }

vm_extract_pcrs() { # LOG OUT
        _vm_console "$1" | awk '$1 == "CNOS-PCR" && $2 == "sha256" && $3 ~ /^[0-9]+$/ && length($4) == 64 && $4 ~ /^[0-9A-Fa-f]+$/ {
                print $3, tolower($4) }' >"$2"
        [ "$(wc -l <"$2")" -eq 24 ] || { echo "vm: $1 holds $(wc -l <"$2") PCR lines, not 24" >&2; return 1; }
}

vm_extract_eventlog() { # LOG OUT
        local size sum got
        read -r size sum < <(_vm_console "$1" | awk '$1 == "CNOS-EVENTLOG-SIZE" { print $2, $3 }')
        [ -n "${size:-}" ] || { echo "vm: no event log in $1" >&2; return 1; }
        _vm_console "$1" | awk '/^CNOS-EVENTLOG-BEGIN$/ { on = 1; next } /^CNOS-EVENTLOG-END$/ { on = 0 }
                on && /^[A-Za-z0-9+\/=]+$/' | base64 -d >"$2" ||
                { echo "vm: the event log in $1 is not valid base64" >&2; return 1; }
        got=$(sha256sum "$2" | cut -d' ' -f1)
        [ "$(stat -c %s "$2")" = "$size" ] && [ "$got" = "$sum" ] ||
                { echo "vm: event log from $1 damaged: $(stat -c %s "$2") bytes sha256 $got, guest said $size $sum" >&2; return 1; }
}

# The guest's "CNOS-ERROR ..." line, if it printed one.
vm_guest_error() { _vm_console "$1" | grep -m1 '^CNOS-ERROR' || true; }
