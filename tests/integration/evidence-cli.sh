#!/usr/bin/env bash
# cnos evidence verify on the real captured evidence in ../shared/testdata: a Milan SEV-SNP report, a
# production TDX v4 quote, a GCE TPM quote set. The JSON values are compared with the folders'
# expected.json (read with jq at test time); mutations and out-of-era times must be refused (exit 1)
# with the check named.
source "$(dirname "$0")/../lib.sh"
need jq xxd
C=$BIN/cnos
SNP=$TESTDATA/sev-snp/go-sev-guest
TDX=$TESTDATA/tdx/go-tdx-guest
TPM=$TESTDATA/tpm-quotes/gce-cos85
cd "$T"

# --- SEV-SNP ---------------------------------------------------------------------------------------
X=$(jq '.reports["go-sev-guest/attestation.bin"].parsed_fields' "$TESTDATA/sev-snp/expected.json")
snp() { "$C" evidence verify --snp-report "$1" --vcek "$SNP/vcek.der" --chain "${CHAIN:-$SNP/ask_ark_milan.pem}" --at "${AT:-2022-09-24T01:00:00Z}" "${@:2}"; }
# The captured guest ran with debugging allowed (policy 0xB0000): a verifier must refuse it ...
assert_fails_with "policy allows debugging" "SNP: real report refused for its debug policy" snp "$SNP/attestation.bin" --json
# ... and with --allow-debug (inspection only) every other check passes and the values are the report's.
snp "$SNP/attestation.bin" --json --allow-debug > snp.json
assert_eq true "$(jq .ok snp.json)" "SNP: verified with VCEK -> ASK -> ARK at 2022-09-24"
assert_eq sev-snp "$(jq -r .tee snp.json)" "SNP: tee"
for f in version measurement report_data chip_id vmpl; do
        assert_eq "$(jq -r ".$f" <<<"$X")" "$(jq -r ".$f" snp.json)" "SNP: $f"
done
assert_eq "$(jq -r '.policy' <<<"$X")" "$(( $(jq -r .policy snp.json) ))" "SNP: policy"
assert_eq vcek "$(jq -r .signing_key snp.json)" "SNP: signing key"
for k in bl:bootloader tee:tee snp:snp ucode:microcode; do
        assert_eq "$(jq -r ".reported_tcb.${k%%:*}" <<<"$X")" "$(jq -r ".reported_tcb.${k#*:}" snp.json)" "SNP: reported_tcb.${k#*:}"
done
# Flip report byte 21 (inside the signed area; virtee's test): the signature must fail.
cp "$SNP/attestation.bin" flip21.bin; printf "\\x$(printf %02x $(( 0x$(xxd -s 21 -l 1 -p flip21.bin) ^ 0x80 )))" |
        dd of=flip21.bin bs=1 seek=21 conv=notrunc status=none
assert_fails_with "signature" "SNP: byte 21 flipped refused" snp flip21.bin --allow-debug
CHAIN=$SNP/ask_ark_genoa.pem assert_fails_with "chain|ASK|ARK|product" "SNP: Genoa chain for a Milan VCEK refused" snp "$SNP/attestation.bin" --allow-debug
AT=2030-01-01T00:00:00Z assert_fails_with "expired" "SNP: VCEK expired in 2030" snp "$SNP/attestation.bin" --allow-debug
AT=2022-09-24T00:00:00Z assert_fails_with "not yet valid" "SNP: VCEK not yet valid before 2022-09-24T00:55:28Z" snp "$SNP/attestation.bin" --allow-debug
assert_fails_with "REPORT_DATA mismatch" "SNP: unexpected REPORT_DATA refused" snp "$SNP/attestation.bin" --allow-debug --expect-report-data "$(printf '%0128d' 0)"
head -c 1000 "$SNP/attestation.bin" > short.bin
assert_fails_with "size|short|truncat" "SNP: truncated report refused" snp short.bin --allow-debug

# --- TDX -------------------------------------------------------------------------------------------
Q=$(jq '.quotes["go-tdx-guest/tdx_prod_quote_SPR_E4.dat"]' "$TESTDATA/tdx/expected.json")
tdx() { "$C" evidence verify --tdx-quote "$1" --root "$TDX/intel_sgx_root_ca.pem" --at "${AT:-2023-07-01T00:00:00Z}" "${@:2}"; }
tdx "$TDX/tdx_prod_quote_SPR_E4.dat" --json > tdx.json
assert_eq true "$(jq .ok tdx.json)" "TDX: production quote verified to the SGX root at 2023-07-01"
assert_eq "$(jq -r .header.version <<<"$Q")" "$(jq -r .version tdx.json)" "TDX: version"
assert_eq "$(jq -r .parsed_fields.mr_td <<<"$Q")" "$(jq -r .mrtd tdx.json)" "TDX: MRTD"
assert_eq "$(jq -r .parsed_fields.report_data <<<"$Q")" "$(jq -r .report_data tdx.json)" "TDX: REPORTDATA"
for i in 0 1 2 3; do
        assert_eq "$(jq -r .parsed_fields.rtmr$i <<<"$Q")" "$(jq -r ".rtmrs[$i]" tdx.json)" "TDX: RTMR$i"
done
assert_eq 50806f000000 "$(jq -r .fmspc tdx.json)" "TDX: FMSPC (SOURCES.md)"
AT=2053-07-01T00:00:00Z assert_fails_with "expired" "TDX: PCK certificate expired in 2053" tdx "$TDX/tdx_prod_quote_SPR_E4.dat"
setbyte() { cp "$1" "$2"; printf "\\x$3" | dd of="$2" bs=1 seek=$(($4)) conv=notrunc status=none; }
setbyte "$TDX/tdx_prod_quote_SPR_E4.dat" m1e.dat 32 0x1E
assert_fails_with "quote-signature" "TDX: header byte 0x1E changed refused" tdx m1e.dat
setbyte "$TDX/tdx_prod_quote_SPR_E4.dat" m3c.dat 32 0x3C
assert_fails_with "quote-signature" "TDX: body byte 0x3C changed refused" tdx m3c.dat
setbyte "$TDX/tdx_prod_quote_SPR_E4.dat" mb77.dat 32 0xB77
assert_fails_with "pck-signature|pck-chain" "TDX: PCK leaf signature byte changed refused" tdx mb77.dat
setbyte "$TDX/tdx_prod_quote_SPR_E4.dat" m1329.dat 32 0x1329
assert_fails_with "root" "TDX: root certificate signature byte changed refused" tdx m1329.dat
assert_fails_with "report-data" "TDX: unexpected REPORTDATA refused" tdx "$TDX/tdx_prod_quote_SPR_E4.dat" --expect-report-data "$(printf '%0128d' 0)"

# --- TPM 2.0 ---------------------------------------------------------------------------------------
tpm() { "$C" evidence verify --tpm-quote "$TPM/$1.tpms_attest" --signature "$TPM/$1.tpmt_signature" --ak "$TPM/ak.tpmt_public" "${@:2}"; }
tpm nonce9009.quote_sha256 --nonce 9009 --json > tpm.json
assert_eq true "$(jq .ok tpm.json)" "TPM: GCE quote verified with nonce 9009"
assert_eq 9009 "$(jq -r .nonce tpm.json)" "TPM: nonce"
assert_eq 0 "$(jq '.pcrs | length' tpm.json)" "TPM: without a log no PCR value is claimed"
tpm nononce.quote_sha256 --json > tpm0.json
assert_eq "" "$(jq -r .nonce tpm0.json)" "TPM: quote without nonce verified"
assert_fails_with "nonce" "TPM: wrong nonce refused" tpm nonce9009.quote_sha256 --nonce 9010
assert_fails_with "nonce" "TPM: missing nonce refused" tpm nonce9009.quote_sha256
assert_fails_with "signature" "TPM: signature of another quote refused" "$C" evidence verify --tpm-quote "$TPM/nonce9009.quote_sha256.tpms_attest" \
        --signature "$TPM/nonce9009.quote_sha1.tpmt_signature" --ak "$TPM/ak.tpmt_public" --nonce 9009
