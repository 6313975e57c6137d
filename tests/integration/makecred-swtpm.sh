#!/usr/bin/env bash
# Software MakeCredential (lib/attestation/tpm2-makecred.c) against a real TPM: swtpm makes an EK and
# an AK with tpm2-tools, cnos makes a credential for the AK's name to the exported EK public area, and
# tpm2_activatecredential must return the secret - for an RSA-2048 (L-1), an ECC P-256 (L-2) and an
# ECC P-384 (H-3) EK, each also from the EK's bare public key as an EK certificate would give it. The
# wrong EK, the wrong AK and a flipped byte must fail. Finally the test-side ActivateCredential in
# itest-makecred (which its standalone checks rely on) must open tpm2_makecredential's own output.
#
# The C side is $BUILD/tests/itest-makecred, driven through CNOS_MAKECRED=... (see its header).
source "$(dirname "$0")/../lib.sh"
need swtpm tpm2_createek tpm2_createak tpm2_readpublic tpm2_makecredential tpm2_activatecredential \
        tpm2_startauthsession tpm2_policysecret tpm2_flushcontext tpm2_getrandom tpm2_getcap openssl cmp xxd od dd
helper=$BUILD/tests/itest-makecred
[ -x "$helper" ] || fail "$helper is not built (make BUILD=$BUILD $helper)"

# ---- swtpm on a free port pair of 127.0.0.1, stopped on exit --------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
mkdir -p "$T/tpm"
for _ in $(seq 50); do
        P=$((20000 + RANDOM % 40000))
        port_free "$P" && port_free $((P + 1)) || continue
        if swtpm socket --tpm2 --tpmstate dir="$T/tpm" \
                --server type=tcp,port=$P,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((P + 1)),bindaddr=127.0.0.1 \
                --flags not-need-init,startup-clear --pid file="$T/tpm/swtpm.pid" --log file="$T/tpm/swtpm.log" \
                --daemon 2>"$T/tpm/start.err"; then
                break
        fi
        P=
done
[ -n "${P:-}" ] && [ -s "$T/tpm/swtpm.pid" ] || fail "cannot start swtpm: $(cat "$T/tpm/start.err" 2>/dev/null)"
SWTPM_PID=$(cat "$T/tpm/swtpm.pid")
on_exit 'kill "$SWTPM_PID" 2>/dev/null; for _ in $(seq 50); do kill -0 "$SWTPM_PID" 2>/dev/null || break; sleep 0.1; done'
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$P"
for _ in $(seq 50); do tpm2_getrandom 4 >/dev/null 2>&1 && break; sleep 0.1; done
tpm2_getrandom 4 >/dev/null || fail "swtpm on port $P does not answer"
echo "swtpm pid $SWTPM_PID on port $P"

# No resource manager: every tool call leaves its transient objects loaded; flush them after each.
flush() { tpm2_flushcontext -t >/dev/null; tpm2_flushcontext -s >/dev/null; }

# activate DIR_AK DIR_EK CREDFILE OUT. A low-range EK (L-1, L-2: adminWithPolicy, no userWithAuth)
# is authorised by its PolicyA, PolicySecret of the endorsement hierarchy; a high-range one (H-3) has
# userWithAuth and takes its empty password (its PolicyB would need the PolicyOR branch digests).
activate() {
        local rc=0
        if [ -e "$2/ek.userwithauth" ]; then
                tpm2_activatecredential -c "$1/ak.ctx" -C "$2/ek.ctx" -i "$3" -o "$4" \
                        >"$T/activate.out" 2>"$T/activate.err" || rc=$?
        else
                tpm2_startauthsession --policy-session -S "$T/session.ctx" >/dev/null &&
                        tpm2_policysecret -S "$T/session.ctx" -c e >/dev/null &&
                        tpm2_activatecredential -c "$1/ak.ctx" -C "$2/ek.ctx" -i "$3" -o "$4" \
                                -P "session:$T/session.ctx" >"$T/activate.out" 2>"$T/activate.err" || rc=$?
        fi
        flush
        return $rc
}

cnos_make() { # EK AK_NAME SECRET OUT
        CNOS_MAKECRED=make CNOS_MAKECRED_EK=$1 CNOS_MAKECRED_AK_NAME=$2 CNOS_MAKECRED_SECRET=$3 \
                CNOS_MAKECRED_OUT=$4 "$helper" >"$T/helper.log" 2>&1 || { cat "$T/helper.log" >&2; fail "itest-makecred make $*"; }
}

# ---- one EK and AK per algorithm ------------------------------------------------------------
declare -A ak_alg=([rsa]=rsa [ecc]=ecc [ecc384]=ecc) ak_sig=([rsa]=rsassa [ecc]=ecdsa [ecc384]=ecdsa)
declare -A secret_len=([rsa]=32 [ecc]=32 [ecc384]=48) # at most the EK nameAlg's digest size
algs=(rsa ecc ecc384)
for g in "${algs[@]}"; do
        d=$T/$g
        mkdir -p "$d"
        tpm2_createek -c "$d/ek.ctx" -G "$g" -u "$d/ek.pub" >/dev/null
        tpm2_readpublic -c "$d/ek.ctx" -f pem -o "$d/ek.pem" >"$d/ek.txt"
        grep -q userwithauth "$d/ek.txt" && touch "$d/ek.userwithauth"
        flush
        tpm2_createak -C "$d/ek.ctx" -c "$d/ak.ctx" -G "${ak_alg[$g]}" -g sha256 -s "${ak_sig[$g]}" \
                -u "$d/ak.pub" -n "$d/ak.name" >/dev/null
        flush
        head -c "${secret_len[$g]}" /dev/urandom >"$d/secret"
done

for g in "${algs[@]}"; do
        d=$T/$g
        # The EK public area from tpm2_createek, and the one cnos rebuilds from the bare public key
        # (what an EK certificate gives) with the TCG template: same Name.
        CNOS_MAKECRED=ek-template CNOS_MAKECRED_EK=$d/ek.pub CNOS_MAKECRED_EK_PEM=$d/ek.pem "$helper" \
                >"$T/helper.log" 2>&1 || { cat "$T/helper.log" >&2; fail "$g: EK public area from the public key differs"; }
        echo "ok: $g: EK public area rebuilt from the public key has the TPM's Name"

        for src in pub pem; do
                cnos_make "$d/ek.$src" "$d/ak.name" "$d/secret" "$d/cred.$src"
                activate "$d" "$d" "$d/cred.$src" "$d/out.$src" || fail "$g ($src): activation failed: $(cat "$T/activate.err")"
                cmp -s "$d/secret" "$d/out.$src" || fail "$g ($src): activation returned another secret"
                echo "ok: $g: tpm2_activatecredential returns the secret (EK from ek.$src)"
        done
done

# ---- what must fail -------------------------------------------------------------------------
expect_refused() { # what AKDIR EKDIR CRED
        local what=$1
        shift
        if activate "$1" "$2" "$3" "$T/bad.out"; then
                fail "$what: activation succeeded"
        fi
        echo "ok: $what refused ($(grep -oE 'Esys_ActivateCredential\(0x[0-9A-Fa-f]+\) - .*' "$T/activate.err" | head -n 1))"
}
# A credential for another RSA-2048 EK (a key that is not in this TPM), activated with this TPM's.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/other-ek.key" 2>/dev/null
openssl pkey -in "$T/other-ek.key" -pubout -out "$T/other-ek.pem"
cnos_make "$T/other-ek.pem" "$T/rsa/ak.name" "$T/rsa/secret" "$T/other-ek.cred"
expect_refused "credential for another RSA-2048 EK" "$T/rsa" "$T/rsa" "$T/other-ek.cred"
# A credential for the RSA EK, presented to the TPM with the ECC EK (and the ECC EK's own AK).
expect_refused "credential for the RSA EK activated with the ECC EK" "$T/ecc" "$T/ecc" "$T/rsa/cred.pub"
expect_refused "credential for the ECC EK activated with the RSA EK" "$T/rsa" "$T/rsa" "$T/ecc/cred.pub"
# Right EK, but the credential names another AK.
expect_refused "credential for another AK's name" "$T/ecc" "$T/rsa" "$T/rsa/cred.pub"
# A flipped byte in the HMAC, in encIdentity, in the encrypted seed.
size=$(stat -c %s "$T/rsa/cred.pub")
for off in 12 $((8 + 2 + 2 + 32 + 1)) $((size - 1)); do
        cp "$T/rsa/cred.pub" "$T/flipped"
        byte=$(od -An -tu1 -j "$off" -N1 "$T/flipped" | tr -d ' ')
        printf "$(printf '\\%03o' $((byte ^ 1)))" | dd of="$T/flipped" bs=1 seek="$off" conv=notrunc status=none
        expect_refused "credential with byte $off flipped" "$T/rsa" "$T/rsa" "$T/flipped"
done

# ---- the test-side ActivateCredential against tpm2-tools' MakeCredential -------------------
# itest-makecred's standalone checks use its own ActivateCredential; here it must open credentials
# that tpm2_makecredential made (with the default TCG EK template for a PEM key).
for kind in rsa:RSA2048 ecc:P-256; do
        g=${kind%%:*} spec=${kind#*:}
        case $spec in
        RSA*) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/soft-$g.key" 2>/dev/null ;;
        *) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:"$spec" -out "$T/soft-$g.key" 2>/dev/null ;;
        esac
        openssl pkey -in "$T/soft-$g.key" -pubout -out "$T/soft-$g.pub.pem"
        tpm2_makecredential -T none -G "$g" -u "$T/soft-$g.pub.pem" -s "$T/rsa/secret" \
                -n "$(xxd -p -c 256 "$T/rsa/ak.name")" -o "$T/soft-$g.cred" >/dev/null 2>"$T/mc.err" ||
                fail "tpm2_makecredential ($g): $(cat "$T/mc.err")"
        CNOS_MAKECRED=activate CNOS_MAKECRED_EK_KEY=$T/soft-$g.key CNOS_MAKECRED_AK_NAME=$T/rsa/ak.name \
                CNOS_MAKECRED_IN=$T/soft-$g.cred CNOS_MAKECRED_OUT=$T/soft-$g.out "$helper" >"$T/helper.log" 2>&1 ||
                { cat "$T/helper.log" >&2; fail "$g: the test ActivateCredential cannot open tpm2_makecredential's output"; }
        cmp -s "$T/rsa/secret" "$T/soft-$g.out" || fail "$g: test ActivateCredential returned another secret"
        echo "ok: $g: test ActivateCredential opens tpm2_makecredential's credential"
done

# Nothing left loaded in the TPM.
left=$(tpm2_getcap handles-transient | grep -c 0x || true)
assert_eq 0 "$left" "no transient objects left in swtpm"
