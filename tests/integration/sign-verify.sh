#!/usr/bin/env bash
# cnos-measure sign/verify interoperate with `openssl dgst -sha256 -sign/-verify` in both directions,
# and refuse tampered files, other keys and keys of the wrong type.
source "$(dirname "$0")/../lib.sh"
need openssl base64
M=$BIN/cnos-measure
cd "$T"

openssl ecparam -name prime256v1 -genkey -noout -out key.pem 2>/dev/null
openssl ec -in key.pem -pubout -out pub.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out other.pem 2>/dev/null
openssl ec -in other.pem -pubout -out other-pub.pem 2>/dev/null
printf '{"pcrs":{"4":{"expected":"00","warn_only":false}}}\n' > m.json

# cnos -> openssl
"$M" sign --key key.pem m.json > m.json.sig
base64 -d m.json.sig > m.json.der
out=$(openssl dgst -sha256 -verify pub.pem -signature m.json.der m.json)
assert_eq "Verified OK" "$out" "openssl verifies a cnos-measure signature"
"$M" verify --pubkey pub.pem m.json m.json.sig >/dev/null
echo "ok: cnos-measure verifies its own signature"

# openssl -> cnos (base64, as the manifest signature is stored, and raw DER as openssl writes it)
openssl dgst -sha256 -sign key.pem -out o.der m.json
base64 -w0 o.der > o.sig
"$M" verify --pubkey pub.pem m.json o.sig >/dev/null
echo "ok: cnos-measure verifies an openssl signature (base64)"
"$M" verify --pubkey pub.pem m.json o.der >/dev/null
echo "ok: cnos-measure verifies an openssl signature (raw DER)"
base64 o.der > o-wrapped.sig   # 76-column lines
"$M" verify --pubkey pub.pem m.json o-wrapped.sig >/dev/null
echo "ok: line-wrapped base64 accepted"

# refusals: exit status 1 and the reason
cp m.json t.json; printf ' ' >> t.json
assert_fails_with "does not verify" "tampered file refused" "$M" verify --pubkey pub.pem t.json m.json.sig
assert_fails_with "does not verify" "other key refused" "$M" verify --pubkey other-pub.pem m.json m.json.sig
rc=0; "$M" verify --pubkey other-pub.pem m.json m.json.sig 2>/dev/null || rc=$?
assert_eq 1 "$rc" "a refused signature exits 1"
printf 'AAAA' > garbage.sig
assert_fails_with "does not verify|neither base64" "garbage signature refused" "$M" verify --pubkey pub.pem m.json garbage.sig
printf '!!notbase64!!' > bad.sig
assert_fails_with "neither base64 nor DER" "non-base64 refused" "$M" verify --pubkey pub.pem m.json bad.sig
: > empty.sig
assert_fails_with "neither base64 nor DER" "empty signature refused" "$M" verify --pubkey pub.pem m.json empty.sig

# wrong key types
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.pem 2>/dev/null
assert_fails_with "not an EC key" "RSA signing key refused" "$M" sign --key rsa.pem m.json
openssl ecparam -name secp384r1 -genkey -noout -out p384.pem 2>/dev/null
openssl ec -in p384.pem -pubout -out p384-pub.pem 2>/dev/null
assert_fails_with "P-256 required" "P-384 signing key refused" "$M" sign --key p384.pem m.json
assert_fails_with "P-256 required" "P-384 verify key refused" "$M" verify --pubkey p384-pub.pem m.json m.json.sig
assert_fails_with "not a PEM public key" "private key as --pubkey refused" "$M" verify --pubkey key.pem m.json m.json.sig
openssl ec -in key.pem -aes256 -passout pass:x -out enc.pem 2>/dev/null
assert_fails_with "encrypted" "encrypted key refused without prompting" "$M" sign --key enc.pem m.json </dev/null
