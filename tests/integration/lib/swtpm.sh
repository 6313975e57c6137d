# Software TPMs for host-side tests: a private test CA, swtpm instances with EK and platform
# certificates from that CA, and swtpm servers on free TCP ports of 127.0.0.1 for the tss2 "swtpm"
# TCTI. Source it after tests/lib.sh (it uses $T, on_exit and fail). Nothing is written outside the
# directories given (never /var/lib/swtpm-localca), and every swtpm started here is stopped by an
# on_exit hook, also when swtpm_start ran in a command substitution.
#
#   swtpm_ca_setup DIR [NAME]    a fresh CA in DIR: DIR/root.pem (self-signed root), DIR/issuercert.pem
#                                (the intermediate that signs EK certificates, key DIR/signkey.pem) and
#                                the swtpm_setup / swtpm_localca configuration pointing at them. NAME
#                                (default cnos-test) goes into the subject names. Every call makes new
#                                keys, so a second DIR is a different CA; with the same NAME it is a
#                                look-alike (same subject and issuer names, other keys). Sets SWTPM_CA.
#   swtpm_instance DIR [--ecc] [--ca CADIR]
#                                TPM 2.0 state in DIR/state, manufactured by swtpm_setup with RSA-2048
#                                (NV 0x01c00002) and ECC P-384 (NV 0x01c00016) EK certificates and a
#                                platform certificate from CADIR (default $SWTPM_CA), NV locked, only
#                                the SHA-256 PCR bank. --ecc makes the storage primary key ECC.
#   swtpm_start DIR              serves DIR/state on a free random port pair P, P+1 (data, control) of
#                                127.0.0.1 as a daemon; prints the TCTI "swtpm:host=127.0.0.1,port=P"
#                                and records P in DIR/port
#   swtpm_stop DIR               graceful shutdown over the control port, then signals; idempotent
#   swtpm_stop_all               every instance swtpm_start started (the on_exit hook)
#   swtpm_pids                   PIDs of live swtpm processes serving any state under $T

need swtpm swtpm_setup swtpm_ioctl swtpm_localca openssl

_SWTPM_REGISTRY=$T/.swtpm-started
: >"$_SWTPM_REGISTRY"
on_exit swtpm_stop_all

_swtpm_abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

swtpm_ca_setup() { # DIR [NAME]
        local dir name=${2:-cnos-test}
        dir=$(_swtpm_abs "$1")
        mkdir -p "$dir"
        openssl req -x509 -newkey rsa:3072 -nodes -keyout "$dir/root.key" -out "$dir/root.pem" \
                -days 3650 -subj "/CN=$name root CA" \
                -addext "basicConstraints=critical,CA:true" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" >"$dir/openssl.log" 2>&1 ||
                { cat "$dir/openssl.log" >&2; fail "swtpm_ca_setup: root CA"; }
        openssl req -new -newkey rsa:3072 -nodes -keyout "$dir/signkey.pem" -out "$dir/issuer.csr" \
                -subj "/CN=$name EK issuing CA" >>"$dir/openssl.log" 2>&1 ||
                { cat "$dir/openssl.log" >&2; fail "swtpm_ca_setup: issuing CA key"; }
        printf '%s\n' "basicConstraints=critical,CA:true,pathlen:0" "keyUsage=critical,keyCertSign,cRLSign" \
                "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$dir/issuer.ext"
        openssl x509 -req -in "$dir/issuer.csr" -CA "$dir/root.pem" -CAkey "$dir/root.key" -set_serial 2 \
                -days 3650 -extfile "$dir/issuer.ext" -out "$dir/issuercert.pem" >>"$dir/openssl.log" 2>&1 ||
                { cat "$dir/openssl.log" >&2; fail "swtpm_ca_setup: issuing CA certificate"; }
        echo 1 >"$dir/certserial"
        # swtpm_localca signs with the key and certificate named here and only creates a CA of its own
        # when they are missing.
        cat >"$dir/swtpm-localca.conf" <<EOF
statedir = $dir
signingkey = $dir/signkey.pem
issuercert = $dir/issuercert.pem
certserial = $dir/certserial
EOF
        cat >"$dir/swtpm-localca.options" <<EOF
--platform-manufacturer cnos
--platform-version 2.1
--platform-model swtpm
EOF
        cat >"$dir/swtpm_setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $dir/swtpm-localca.conf
create_certs_tool_options = $dir/swtpm-localca.options
active_pcr_banks = sha256
EOF
        SWTPM_CA=$dir
}

swtpm_instance() { # DIR [--ecc] [--ca CADIR]
        local dir ca=${SWTPM_CA:-} ecc=()
        dir=$(_swtpm_abs "$1")
        shift
        while [ $# -gt 0 ]; do
                case $1 in
                --ecc) ecc=(--ecc) ;;
                --ca) ca=$(_swtpm_abs "$2"); shift ;;
                *) fail "swtpm_instance: unknown option $1" ;;
                esac
                shift
        done
        if [ -z "$ca" ] || [ ! -f "$ca/swtpm_setup.conf" ]; then
                fail "swtpm_instance: no CA (swtpm_ca_setup first)"
        fi
        mkdir -p "$dir/state"
        swtpm_setup --tpm2 --tpmstate "$dir/state" --config "$ca/swtpm_setup.conf" \
                --create-ek-cert --create-platform-cert --lock-nvram --overwrite --pcr-banks sha256 \
                "${ecc[@]}" --logfile "$dir/swtpm_setup.log" >/dev/null 2>&1 ||
                { cat "$dir/swtpm_setup.log" >&2; fail "swtpm_setup failed for $dir"; }
        echo "$ca" >"$dir/ca"
}

# A random even port whose pair is not in use right now. swtpm_start still retries on EADDRINUSE:
# another test may take the port between this check and the bind.
_swtpm_port_pair() {
        local p
        p=$(((RANDOM * 32768 + RANDOM) % 20000 * 2 + 20000))
        if command -v ss >/dev/null &&
                [ -n "$(ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ]; then
                return 1
        fi
        echo "$p"
}

swtpm_start() { # DIR -> TCTI on stdout
        local dir port pid _
        dir=$(_swtpm_abs "$1")
        [ -d "$dir/state" ] || fail "swtpm_start: $dir/state missing (swtpm_instance first)"
        # Registered before the start, so the hook finds it whatever happens next.
        echo "$dir" >>"$_SWTPM_REGISTRY"
        for _ in $(seq 30); do
                port=$(_swtpm_port_pair) || continue
                rm -f "$dir/swtpm.pid"
                # --daemon: the parent exits once the sockets are bound, so a busy port fails here.
                # Its output goes to a file: an inherited stdout would keep $(swtpm_start) waiting.
                if swtpm socket --tpm2 --tpmstate "dir=$dir/state" \
                        --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
                        --ctrl "type=tcp,port=$((port + 1)),bindaddr=127.0.0.1" \
                        --flags not-need-init,startup-clear --daemon \
                        --pid "file=$dir/swtpm.pid" --log "file=$dir/swtpm.log,level=1" \
                        </dev/null >"$dir/swtpm.out" 2>&1; then
                        for _ in $(seq 100); do
                                [ -s "$dir/swtpm.pid" ] && break
                                sleep 0.05
                        done
                        pid=$(cat "$dir/swtpm.pid" 2>/dev/null || true)
                        if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
                                fail "swtpm_start: swtpm for $dir wrote no PID file"
                        fi
                        echo "$port" >"$dir/port"
                        echo "swtpm:host=127.0.0.1,port=$port"
                        return 0
                fi
                grep -q "in use" "$dir/swtpm.out" "$dir/swtpm.log" 2>/dev/null ||
                        { cat "$dir/swtpm.out" "$dir/swtpm.log" >&2 2>/dev/null; fail "swtpm_start: swtpm failed for $dir"; }
        done
        fail "swtpm_start: no free port pair found"
}

# True while PID is a live (not zombie) swtpm serving DIR: a recycled PID is never signalled.
_swtpm_alive() { # PID DIR
        local state
        [ -r "/proc/$1/cmdline" ] || return 1
        tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "dir=$2/state" || return 1
        state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo Z)
        [ "$state" != Z ]
}

swtpm_stop() { # DIR
        local dir pid port sig _
        dir=$(_swtpm_abs "$1")
        pid=$(cat "$dir/swtpm.pid" 2>/dev/null || true)
        [ -n "$pid" ] || return 0
        port=$(cat "$dir/port" 2>/dev/null || true)
        if _swtpm_alive "$pid" "$dir" && [ -n "$port" ]; then
                swtpm_ioctl --tcp "127.0.0.1:$((port + 1))" -s >/dev/null 2>&1 || true
        fi
        for sig in none TERM KILL; do
                [ "$sig" = none ] || { _swtpm_alive "$pid" "$dir" && kill "-$sig" "$pid" 2>/dev/null; }
                for _ in $(seq 50); do
                        _swtpm_alive "$pid" "$dir" || break 2
                        sleep 0.05
                done
        done
        _swtpm_alive "$pid" "$dir" && echo "swtpm_stop: swtpm $pid for $dir survived SIGKILL" >&2
        rm -f "$dir/swtpm.pid" "$dir/port"
}

swtpm_stop_all() {
        local dir
        [ -f "$_SWTPM_REGISTRY" ] || return 0
        sort -u "$_SWTPM_REGISTRY" | while read -r dir; do
                swtpm_stop "$dir"
        done
}

swtpm_pids() {
        local p
        for p in $(pgrep -x swtpm 2>/dev/null); do
                tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "dir=$T/" && echo "$p"
        done
        return 0
}
