# A cnos node end to end: the built image (qemu variant) booting in QEMU + OVMF + swtpm, joining a
# real cnos-joind on the host over QEMU user networking, with its own state disk. Source after
# tests/lib.sh, lib/vm.sh and lib/image.sh (image_ensure first).
#
#   node_cluster DIR [MANIFEST]   operator material in DIR: master secret, the manifest (default: the
#                                 image's qemu measurements.json) signed by a fresh key, cluster CA,
#                                 the swtpm CA every node's EK certificate comes from, the kubelet
#                                 STAND-IN served over HTTP as the hash-pinned "kubelet" component
#   node_joind_start              starts cnos-joind on 127.0.0.1 (sets JOIND_PORT, JOIND_PID, JOIND_LOG);
#                                 JOIND_LISTEN_PORT=P restarts it on the port running nodes forward to
#   node_joind_stop
#   node_tpm NAME                 a swtpm for node NAME, EK certificate from the cluster's swtpm CA
#   node_boot_start NAME DISK LOG boots the image (IMG_DISK, default the qemu variant) with NAME's
#                                 TPM and state DISK (sets NODE_PID)
#   node_wait LOG PATTERN SECS    waits until the console matches PATTERN (0), QEMU exits (1) or time runs out (2)
#   node_powerdown / node_kill    ACPI power button (clean shutdown) / SIGKILL (power loss)
#
# The QEMU command line is the one of lib/vm.sh plus the network (no option ROM: nothing extra is
# measured) and the state disk (serial cnos-state, which the image's command line names).

NODE_API_ENDPOINT=${NODE_API_ENDPOINT:-10.0.0.1:6443}

node_cluster() { # DIR [MANIFEST]
        NODE_DIR=$(_vm_abs "$1")
        local manifest=${2:-$IMG/qemu/measurements.json}
        mkdir -p "$NODE_DIR/www"
        (
        cd "$NODE_DIR"
        (umask 077 && printf 'master-secret = %s\nsalt = %s\n' "$(openssl rand -hex 32)" "$(openssl rand -hex 32)" >master.secret)
        cp "$manifest" measurements.json
        openssl ecparam -name prime256v1 -genkey -noout -out manifest.key 2>/dev/null
        openssl ec -in manifest.key -pubout -out manifest.pub 2>/dev/null
        "$BIN/cnos-measure" sign --key manifest.key measurements.json >measurements.json.sig
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 \
                -subj "/CN=cnos e2e cluster CA" -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        chmod 600 ca.key
        cp "$BUILD/tests/cnos-kubelet-standin" www/kubelet
        )
        [ -x "$NODE_DIR/www/kubelet" ] || fail "no kubelet stand-in: make build/tests/cnos-kubelet-standin"
        NODE_KUBELET_SHA=$(openssl dgst -sha256 -r "$NODE_DIR/www/kubelet" | cut -c1-64)
        # The swtpm CA: one for the whole cluster, made by the first node_tpm.
        mkdir -p "$NODE_DIR/tpm-ca"
        # The component server: the guest reaches the host's loopback as 10.0.2.2.
        python3 -m http.server --bind 127.0.0.1 --directory "$NODE_DIR/www" 0 >"$NODE_DIR/http.log" 2>&1 &
        NODE_HTTP_PID=$!
        on_exit "kill $NODE_HTTP_PID 2>/dev/null"
        local i
        for i in $(seq 100); do
                NODE_HTTP_PORT=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$NODE_DIR/http.log" | head -n 1)
                [ -n "$NODE_HTTP_PORT" ] && break
                sleep 0.1
        done
        [ -n "$NODE_HTTP_PORT" ] || fail "component server did not start: $(cat "$NODE_DIR/http.log")"
}

node_joind_start() {
        JOIND_LOG=$NODE_DIR/joind.log
        rm -f "$NODE_DIR/joind.addr"
        "$BIN/cnos-joind" --listen "127.0.0.1:${JOIND_LISTEN_PORT:-0}" --ready-file "$NODE_DIR/joind.addr" \
                --secret-file "$NODE_DIR/master.secret" --manifest "$NODE_DIR/measurements.json" \
                --manifest-signature "$NODE_DIR/measurements.json.sig" --manifest-key "$NODE_DIR/manifest.pub" \
                --ek-ca "$NODE_DIR/tpm-ca/ek-ca.pem" --ca-cert "$NODE_DIR/ca.pem" --ca-key "$NODE_DIR/ca.key" \
                --api-endpoint "$NODE_API_ENDPOINT" \
                --component "http://10.0.2.2:$NODE_HTTP_PORT/kubelet $NODE_KUBELET_SHA /kubelet" \
                >>"$JOIND_LOG" 2>&1 &
        JOIND_PID=$!
        on_exit "kill $JOIND_PID 2>/dev/null"
        local i
        for i in $(seq 100); do
                [ -s "$NODE_DIR/joind.addr" ] && break
                kill -0 "$JOIND_PID" 2>/dev/null || fail "cnos-joind exited: $(tail -n 5 "$JOIND_LOG")"
                sleep 0.1
        done
        JOIND_PORT=$(sed 's/.*://' "$NODE_DIR/joind.addr")
        [ -n "$JOIND_PORT" ] || fail "cnos-joind did not report its address"
}

node_joind_stop() {
        [ -n "${JOIND_PID:-}" ] || return 0
        kill "$JOIND_PID" 2>/dev/null || true
        wait "$JOIND_PID" 2>/dev/null || true
        JOIND_PID=
}

node_tpm() { # NAME
        local dir=$NODE_DIR/tpm-$1
        # Every node's EK certificate from the cluster's one swtpm CA.
        mkdir -p "$dir"
        rm -rf "$dir/ca"
        ln -sfn "$NODE_DIR/tpm-ca" "$dir/ca"
        vm_tpm_setup "$dir" || fail "swtpm_setup for $1"
        cat "$NODE_DIR/tpm-ca/swtpm-localca-rootca-cert.pem" "$NODE_DIR/tpm-ca/issuercert.pem" >"$NODE_DIR/tpm-ca/ek-ca.pem"
}

node_boot_start() { # NAME DISK LOG
        local name=$1 disk log vars dir=$NODE_DIR/tpm-$1
        disk=$(_vm_abs "$2")
        log=$(_vm_abs "$3")
        node_tpm_stopped # the previous boot's, if any
        vm_tpm_start "$dir" || fail "swtpm for $name"
        vars=$(mktemp "$NODE_DIR/OVMF_VARS.XXXXXX")
        cp "$VM_OVMF_VARS" "$vars"
        : >"$log"
        NODE_MONITOR=$NODE_DIR/$name.monitor
        # guestfwd: slirp hands the command the guest's socket as stdin, stdout and stderr, so socat
        # must not log (its messages would reach the guest's TLS stack as bytes).
        timeout -k 10 "${NODE_TIMEOUT:-900}" qemu-system-x86_64 \
                -M q35 -accel tcg -cpu max -smp 1 -m 2048 -nographic -no-reboot \
                -drive "if=pflash,format=raw,unit=0,readonly=on,file=$VM_OVMF_CODE" \
                -drive "if=pflash,format=raw,unit=1,file=$vars" \
                -chardev "socket,id=chrtpm,path=$VM_TPM_SOCK" \
                -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
                -drive "if=none,id=disk0,format=raw,readonly=on,file=${IMG_DISK:-$IMG/qemu/disk.raw}" \
                -device virtio-blk-pci,drive=disk0,bootindex=0 \
                -drive "if=none,id=state,format=raw,file=$disk,cache=writeback" \
                -device virtio-blk-pci,drive=state,serial=cnos-state \
                -netdev "user,id=net0,hostname=$name,guestfwd=tcp:10.0.2.100:9000-cmd:socat -lf /dev/null - TCP:127.0.0.1:$JOIND_PORT" \
                -device virtio-net-pci,netdev=net0,romfile= \
                -serial "file:$log" -monitor "unix:$NODE_MONITOR,server,nowait" </dev/null >"$log.qemu" 2>&1 &
        NODE_PID=$!
        on_exit "pkill -KILL -P $NODE_PID 2>/dev/null; kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null"
}

node_console() { tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;]*[a-zA-Z]//g'; }

node_wait() { # LOG PATTERN SECS
        local i
        for i in $(seq "$3"); do
                node_console "$1" | grep -E "$2" >/dev/null && return 0
                kill -0 "$NODE_PID" 2>/dev/null || { node_console "$1" | grep -E "$2" >/dev/null && return 0; return 1; }
                sleep 1
        done
        return 2
}

node_exited() { ! kill -0 "$NODE_PID" 2>/dev/null; }

# The ACPI power button, pressed again every 10 s (a press before logind watches the button device,
# which under TCG can be well after kubelet starts, goes unheard), for up to 90 s; after that the
# power is cut (the state disk must survive either: the stand-in fsync()s its marker).
node_powerdown() {
        local i
        for i in $(seq 90); do
                [ $((i % 10)) -ne 1 ] || echo system_powerdown | socat - "UNIX-CONNECT:$NODE_MONITOR" >/dev/null 2>&1 || true
                node_exited && break
                sleep 1
        done
        if node_exited; then echo "node: powered off cleanly"; else echo "node: no clean shutdown in 90 s, cutting the power"; node_kill; fi
        wait "$NODE_PID" 2>/dev/null || true
        node_tpm_stopped
}

# Power loss: QEMU (the child of `timeout`) gets SIGKILL.
node_kill() {
        pkill -KILL -P "$NODE_PID" 2>/dev/null || true
        kill -KILL "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        node_tpm_stopped
}

# The node's swtpm (--terminate) ends when QEMU goes away, but not at once: the next boot's swtpm
# cannot lock the same state while it runs. Up to 10 s, then SIGTERM.
node_tpm_stopped() {
        local i
        [ -n "${VM_TPM_PID:-}" ] || return 0
        for i in $(seq 100); do kill -0 "$VM_TPM_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$VM_TPM_PID" 2>/dev/null || true
        wait "$VM_TPM_PID" 2>/dev/null || true
}

node_tail() { # LOG
        echo "----- console tail ($1) -----" >&2
        node_console "$1" | grep -v 'Job .* running' | tail -n "${2:-40}" >&2
}
