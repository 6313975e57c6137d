#!/usr/bin/env bash
# `cnos-measure authenticode` against two independent Authenticode implementations, pesign and
# osslsigncode, on real boot binaries installed on this machine (systemd-stub, systemd-boot and the
# signed Debian kernel), and the testdata vectors through the CLI.
#
# Padding, and how the comparisons stay honest. Firmware (EDK2 DxeTpm2MeasureBootLib) hashes the
# file exactly as stored, and so does cnos-measure. Signing tools first zero-pad the file to a
# multiple of 8 bytes, because the attribute certificate table they append must start 8-aligned,
# and hash the padded file. So each tool is compared with cnos-measure on the very bytes it hashed:
#   pesign -h -d ALG -i F             hashes F as stored ("hash: <hex>")       cnos-measure on F
#   pesign -h -P -d ALG -i F          hashes F zero-padded to 8 (-P)           cnos-measure on a padded copy
#   osslsigncode extract-data -h ALG  always pads to 8, writes the digest into a PKCS#7 blob
#                                     (read back with openssl asn1parse); run on the padded copy
#                                     itself, where padding adds nothing, and on F, which must give
#                                     the same digest
#   osslsigncode verify -in S         prints "Calculated message digest" for a signed file S,
#                                     certificate table excluded                cnos-measure on S
# The kernel and the systemd binaries are whatever this machine has installed, so the digests are
# not pinned: the tools are the oracle. pesign knows sha1 and sha256 only ("Digest "sha384" not
# found"); osslsigncode covers sha1, sha256 and sha384.
. "$(dirname "$0")/../lib.sh"
need pesign osslsigncode openssl jq truncate

CNOS=$BIN/cnos-measure
[ -x "$CNOS" ] || fail "$CNOS not built (make)"

STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
SDBOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
for f in "$STUB" "$SDBOOT" "$KERNEL"; do
        [ -n "$f" ] && [ -r "$f" ] || fail "missing $f (packages systemd-boot-efi, linux-image-amd64)"
done
PEDIR=$TESTDATA/pe-authenticode

cnos() { # alg file
        "$CNOS" authenticode --alg "$1" "$2"
}

pesign_hash() { # alg file [-P]
        local out
        out=$(pesign -h -d "$1" -i "$2" ${3:-}) || fail "pesign -h -d $1 -i $2 ${3:-} failed"
        sed -n 's/^hash: \([0-9a-f]*\)$/\1/p' <<<"$out"
}

# The single OCTET STRING in the SpcIndirectDataContent that extract-data writes is the digest.
ossl_extract() { # alg file
        local p7=$T/extract.p7
        rm -f "$p7"
        osslsigncode extract-data -h "$1" -in "$2" -out "$p7" >/dev/null || fail "osslsigncode extract-data -h $1 $2 failed"
        openssl asn1parse -inform DER -in "$p7" | sed -n 's/.*prim: OCTET STRING *\[HEX DUMP\]://p' | tr 'A-F' 'a-f'
}

ossl_calculated() { # signed-file [verify args...]
        local f=$1
        shift
        # verify exits non-zero when the signer is not trusted; only the recomputed digest matters.
        { osslsigncode verify "$@" -in "$f" 2>&1 || true; } |
                sed -n 's/^Calculated message digest *: *\([0-9A-Fa-f]*\).*/\1/p' | tr 'A-F' 'a-f'
}

padded_copy() { # file -> path of a copy zero-padded to a multiple of 8
        local out
        out=$T/padded-$(basename "$1")
        cp "$1" "$out"
        truncate -s $((($(stat -c %s "$1") + 7) / 8 * 8)) "$out"
        echo "$out"
}

nonempty() { # value what
        [ -n "$1" ] || fail "$2: tool printed no digest"
}

# --- testdata vectors through the CLI ------------------------------------------------------------
for name in test.pecoff HelloWorld.efi; do
        want=$(jq -r --arg f "$name" '.files[$f].authenticode_sha256' "$PEDIR/expected.json")
        assert_eq "$want" "$(cnos sha256 "$PEDIR/$name")" "$name authenticode_sha256 (expected.json)"
        assert_eq "$want" "$("$CNOS" authenticode "$PEDIR/$name")" "$name default algorithm is sha256"
        want=$(jq -r --arg f "$name" '.files[$f].padded8_sha256' "$PEDIR/expected.json")
        assert_eq "$want" "$(cnos sha256 "$(padded_copy "$PEDIR/$name")")" "$name padded8_sha256 (expected.json)"
done

# --- pesign ----------------------------------------------------------------------------------------
for f in "$PEDIR/test.pecoff" "$PEDIR/HelloWorld.efi" "$STUB" "$SDBOOT" "$KERNEL"; do
        p=$(padded_copy "$f")
        for alg in sha1 sha256; do
                d=$(pesign_hash "$alg" "$f")
                nonempty "$d" "pesign $alg $f"
                assert_eq "$d" "$(cnos "$alg" "$f")" "pesign -h -d $alg, $(basename "$f") as stored"
                d=$(pesign_hash "$alg" "$f" -P)
                nonempty "$d" "pesign -P $alg $f"
                assert_eq "$d" "$(cnos "$alg" "$p")" "pesign -h -P -d $alg, $(basename "$f") zero-padded to 8"
        done
done

# --- osslsigncode extract-data (pads to 8) ----------------------------------------------------
for f in "$STUB" "$SDBOOT" "$KERNEL"; do
        p=$(padded_copy "$f")
        for alg in sha1 sha256 sha384; do
                d=$(ossl_extract "$alg" "$p")
                nonempty "$d" "osslsigncode extract-data $alg $p"
                assert_eq "$d" "$(cnos "$alg" "$p")" "osslsigncode extract-data -h $alg, $(basename "$f") padded copy"
                assert_eq "$d" "$(ossl_extract "$alg" "$f")" "osslsigncode pads $(basename "$f") itself the same way"
        done
done

# --- signed files: the certificate table is left out -------------------------------------------
# The Debian kernel carries Debian's signature (a certificate table at the end of the file).
[ "$(stat -c %s "$KERNEL")" -gt 0 ] && [ $(($(stat -c %s "$KERNEL") % 8)) -eq 0 ] ||
        fail "$KERNEL: expected a signed, 8-aligned kernel"
d=$(ossl_calculated "$KERNEL")
nonempty "$d" "osslsigncode verify $KERNEL"
assert_eq "$d" "$(cnos sha256 "$KERNEL")" "osslsigncode verify, Debian-signed $(basename "$KERNEL")"
osslsigncode remove-signature -in "$KERNEL" -out "$T/kernel-unsigned" >/dev/null || fail "osslsigncode remove-signature failed"
[ "$(stat -c %s "$T/kernel-unsigned")" -lt "$(stat -c %s "$KERNEL")" ] || fail "remove-signature removed nothing"
for alg in sha1 sha256 sha384; do
        assert_eq "$(cnos "$alg" "$T/kernel-unsigned")" "$(cnos "$alg" "$KERNEL")" \
                "$alg: kernel with and without its signature hash the same"
done

# Sign copies with a throwaway key: osslsigncode pads, appends a certificate table, and its verify
# recomputes the digest over the signed file, which cnos-measure must reproduce for every bank.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 2 \
        -subj /CN=cnos-authenticode-test 2>/dev/null || fail "openssl req failed"
for f in "$STUB" "$SDBOOT" "$KERNEL"; do
        for alg in sha1 sha256 sha384; do
                s=$T/signed-$alg-$(basename "$f")
                osslsigncode sign -h "$alg" -certs "$T/cert.pem" -key "$T/key.pem" -in "$f" -out "$s" >/dev/null ||
                        fail "osslsigncode sign -h $alg $f failed"
                d=$(ossl_calculated "$s" -CAfile "$T/cert.pem")
                nonempty "$d" "osslsigncode verify $s"
                assert_eq "$d" "$(cnos "$alg" "$s")" "osslsigncode sign+verify -h $alg, $(basename "$f")"
                [ "$f" = "$KERNEL" ] ||
                        assert_eq "$(cnos "$alg" "$(padded_copy "$f")")" "$d" "$alg: signed $(basename "$f") = its padded copy"
        done
done

# --- errors: exit 2, "cnos-measure: FILE: message" ------------------------------------------------
expect_exit2() { # pattern what cmd...
        local pat=$1 what=$2 rc=0
        shift 2
        "$@" >"$T/.out" 2>"$T/.err" || rc=$?
        [ "$rc" -eq 2 ] || fail "$what: exit $rc, expected 2 ($(cat "$T/.err"))"
        [ ! -s "$T/.out" ] || fail "$what: printed to stdout: $(cat "$T/.out")"
        grep -qE -- "$pat" "$T/.err" || fail "$what: stderr does not match /$pat/: $(cat "$T/.err")"
        echo "ok: $what ($(head -n 1 "$T/.err"))"
}
printf 'hello' >"$T/not-pe"
head -c 1000000 "$KERNEL" >"$T/kernel-truncated"
expect_exit2 "^cnos-measure: $T/not-pe: truncated DOS header at offset 0: file has 5 bytes" "not a PE file" \
        "$CNOS" authenticode "$T/not-pe"
expect_exit2 "^cnos-measure: $T/kernel-truncated: section [0-9]+ \(.*\), header at offset 0x[0-9a-f]+: raw data .* lies outside the file \(size 0xf4240\)" \
        "truncated kernel" "$CNOS" authenticode "$T/kernel-truncated"
expect_exit2 "^cnos-measure: $T/missing: No such file or directory" "missing file" "$CNOS" authenticode "$T/missing"
expect_exit2 "^cnos-measure: $T: not a regular file" "directory" "$CNOS" authenticode "$T"
expect_exit2 "unsupported algorithm 'md5'" "--alg md5" "$CNOS" authenticode --alg md5 "$STUB"
expect_exit2 "unsupported algorithm 'sha512'" "--alg sha512" "$CNOS" authenticode --alg sha512 "$STUB"
expect_exit2 "needs an argument" "--alg without value" "$CNOS" authenticode "$STUB" --alg
expect_exit2 "unknown option '--frob'" "unknown option" "$CNOS" authenticode --frob "$STUB"
expect_exit2 "expected exactly one FILE" "no FILE" "$CNOS" authenticode
expect_exit2 "expected exactly one FILE" "two FILEs" "$CNOS" authenticode "$STUB" "$SDBOOT"
"$CNOS" authenticode --help | grep -q '^Usage: cnos-measure authenticode' || fail "--help"
echo "ok: --help"
