#!/usr/bin/env bash
# Evidence verification on one core against the raw signature checks it contains. bench-verify (a C
# program, tests/bench/bench-verify.c) runs the full verification of a real TPM quote with its event
# log, SEV-SNP report with its AMD chain and TDX quote with its PCK chain in a loop and prints the
# verifications per CPU second, and which signature checks one verification holds. `openssl speed`
# times exactly those primitives in the same run; the sum of their 1/rate is what one verification
# would cost if it were nothing but its signature checks. RATIO <kind>_crypto_share is that time over
# the measured time: the goal is >= 0.5, i.e. parsing, chain building and policy cost less than the
# cryptography. Both sides count CPU time of one thread (openssl speed: user time), and run
# alternately ROUNDS times, the best of each kept, so a burst of load on this shared machine does
# not decide the ratio.
source "$(dirname "$0")/../lib.sh"
source "$CNOS_TOP/tests/bench/lib.sh"
need openssl awk
SECS=${BENCH_SECONDS:-2}
ROUNDS=${ROUNDS:-2}
[[ $SECS =~ ^[1-9][0-9]*$ ]] || fail "BENCH_SECONDS=$SECS: openssl speed takes whole seconds"
BENCH=$BUILD/bench/bench-verify
[ -x "$BENCH" ] || fail "$BENCH is missing: build it with make BUILD=$BUILD bench"
[ -d "$TESTDATA" ] || skip "no test data ($TESTDATA)"
cd "$T" || exit 1

"$BENCH" --testdata "$TESTDATA" --list-sigops >sigops
algs=$(awk '$1 == "sigop" {print $3}' sigops | sort -u | tr '\n' ' ')

for i in $(seq "$ROUNDS"); do
        # shellcheck disable=SC2086 # one word per primitive
        openssl speed -mr -seconds "$SECS" $algs >"speed.$i" 2>"speed.$i.err" ||
                fail "openssl speed $algs: $(tail -n 3 "speed.$i.err")"
        "$BENCH" --testdata "$TESTDATA" --seconds "$SECS" >"verify.$i" || fail "bench-verify failed (round $i)"
done

# openssl speed -mr: "+F2:<i>:<bits>:<sign/s>:<verify/s>" for RSA, "+F4:..." for ECDSA (NIST curves
# are named ecdsap<bits> on its command line). rates FILE... and results FILE... keep the best of
# the files given.
rates() {
        cat "$@" | awk -F: '
                $1 == "+F2" { n = "rsa" $3 } $1 == "+F4" { n = "ecdsap" $3 }
                ($1 == "+F2" || $1 == "+F4") && $5 > best[n] { best[n] = $5 }
                END { for (n in best) print n, best[n] }'
}
results() {
        cat "$@" | awk '$1 == "result" && $6 > best[$2] { best[$2] = $6 } END { for (k in best) print k, best[k] }'
}
# report RATES RESULTS [table]: per kind, the crypto-only time (sum over its signature checks of
# 1/rate) and the share it takes of the measured time; with "table", the lines to print.
report() {
        awk -v table="${3:-}" '
             FILENAME == ARGV[1] { rate[$1] = $2; next }
             FILENAME == ARGV[2] { if ($1 == "sigop") crypto[$2] += $4 / rate[$3]; next }
             { got[$1] = $2 }
             END {
                n = split("tpm snp tdx", kinds, " ")
                for (i = 1; i <= n; i++) {
                        k = kinds[i]
                        if (!(k in got))
                                continue
                        if (table)
                                printf "  %-4s %12.1f %12.1f %16.1f %12.1f\n", k, got[k], 1e6 / got[k], 1 / crypto[k], 1e6 * crypto[k]
                        else
                                printf "%s %.2f\n", k, crypto[k] * got[k]
                }
             }' "$1" sigops "$2"
}

rates speed.[0-9]* >best.rates
results verify.[0-9]* >best.results
for a in $algs; do grep -q "^$a " best.rates || fail "openssl speed reported no verify rate for $a"; done
for i in $(seq "$ROUNDS"); do
        rates "speed.$i" >"rates.$i"
        results "verify.$i" >"results.$i"
        report "rates.$i" "results.$i" >"shares.$i"
done

echo "openssl speed -seconds $SECS, verifications per CPU second (best of $ROUNDS):"
sort best.rates | awk '{printf "  %-10s %10.0f/s  %8.1f us\n", $1, $2, 1e6 / $2}'
echo "signature checks in one verification (read from lib/attestation and the certificates):"
awk '$1 == "sigop" {printf "  %s  %ux %-9s ", $2, $4, $3; for (i = 5; i <= NF; i++) printf " %s", $i; print ""}' sigops
echo "full verification on one thread, $SECS s of CPU each (best of $ROUNDS), against its signature checks alone:"
printf '  %-4s %12s %12s %16s %12s\n' kind "verif/s" "us/verif" "crypto-only/s" "crypto us"
report best.rates best.results table
# The ratio of the best of each side, and (to show the noise) of each round on its own.
report best.rates best.results | while read -r k share; do
        printf 'RATIO %s_crypto_share = %s   (goal >= 0.5; rounds:%s)\n' "$k" "$share" \
                "$(for i in $(seq "$ROUNDS"); do awk -v k="$k" '$1 == k {printf " %s", $2}' "shares.$i"; done)"
done
