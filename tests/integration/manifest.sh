#!/usr/bin/env bash
# cnos-measure manifest: canonical bytes (the same image always gives the same file, and the file is
# what `jq -S -c` prints for it), the image's SHA-256 and size, every predicted PCR, and a signature
# openssl accepts over exactly those bytes.
source "$(dirname "$0")/../lib.sh"
source "$CNOS_TOP/tests/e2e/lib/uki.sh"
need openssl jq
M=$BIN/cnos-measure
cd "$T"

head -c 200000 /dev/urandom > initrd.img
build_uki uki.efi --initrd initrd.img --cmdline "console=ttyS0 ro"
build_esp_disk disk.img uki.efi

"$M" manifest --image disk.img --name cnos-node --version 1.2.3 > m1.json
"$M" manifest --image disk.img --name cnos-node --version 1.2.3 > m2.json
cmp m1.json m2.json || fail "two manifests of the same image differ"
echo "ok: manifest is deterministic ($(stat -c %s m1.json) bytes, sha256 $(openssl dgst -sha256 -r m1.json | cut -c1-16)...)"
assert_eq "$(jq -S -c . m1.json)" "$(cat m1.json)" "manifest is canonical JSON (sorted keys, no whitespace)"
assert_eq "cnos-measurements/1" "$(jq -r .schema m1.json)" "schema"
assert_eq "$(openssl dgst -sha256 -r disk.img | cut -d' ' -f1)" "$(jq -r .image.sha256 m1.json)" "image sha256 equals openssl dgst"
assert_eq "$(stat -c %s disk.img)" "$(jq -r .image.size m1.json)" "image size"
assert_eq "cnos-node 1.2.3" "$(jq -r '.image.name + " " + .image.version' m1.json)" "name and version"
"$M" predict --json --image disk.img > p.json
for i in 4 8 9 11 12 13 15; do
        assert_eq "$(jq -r ".pcrs[\"$i\"]" p.json)" "$(jq -r ".pcrs[\"$i\"].expected" m1.json)" "PCR $i expected value equals predict"
        assert_eq false "$(jq -r ".pcrs[\"$i\"].warn_only" m1.json)" "PCR $i is enforced"
done
assert_eq sha256 "$(jq -r .model.alg m1.json)" "manifest bank is sha256"

# A different command line is a different image: PCR 11 and the image hash change, PCR 4 too.
build_uki uki2.efi --initrd initrd.img --cmdline "console=ttyS0 ro cnos.debug=1"
build_esp_disk disk2.img uki2.efi
"$M" manifest --image disk2.img --name cnos-node --version 1.2.3 > m3.json
assert_ne "$(jq -r '.pcrs["11"].expected' m1.json)" "$(jq -r '.pcrs["11"].expected' m3.json)" "changed cmdline changes PCR 11"
assert_ne "$(jq -r '.pcrs["9"].expected' m1.json)" "$(jq -r '.pcrs["9"].expected' m3.json)" "changed cmdline changes PCR 9"
assert_ne "$(jq -r '.pcrs["4"].expected' m1.json)" "$(jq -r '.pcrs["4"].expected' m3.json)" "changed UKI changes PCR 4"
assert_ne "$(jq -r .image.sha256 m1.json)" "$(jq -r .image.sha256 m3.json)" "changed image changes its sha256"

# Signed manifest, checked by openssl over the same bytes.
openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null
openssl ec -in key.pem -pubout -out pub.pem 2>/dev/null
"$M" sign --key key.pem m1.json > m1.json.sig
base64 -d m1.json.sig > sig.der
assert_eq "Verified OK" "$(openssl dgst -sha256 -verify pub.pem -signature sig.der m1.json)" "openssl verifies the manifest signature"
"$M" verify --pubkey pub.pem m1.json m1.json.sig >/dev/null && echo "ok: cnos-measure verifies it"
assert_fails_with "does not verify" "signature of one manifest does not cover another" "$M" verify --pubkey pub.pem m3.json m1.json.sig

assert_fails_with "--image FILE is required" "manifest needs --image" "$M" manifest
assert_fails_with "not a GPT" "manifest of a non-image refused" "$M" manifest --image uki.efi
