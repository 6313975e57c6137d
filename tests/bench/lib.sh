# Helpers for the benchmarks. Timing: time_ns CMD... prints the wall time of one run in nanoseconds;
# median reads numbers on stdin. Runs are interleaved by the callers so that a burst of load on this
# shared machine hits every contender alike. bench_join_setup (below): the join benchmarks' fixture.
time_ns() {
        local s e
        s=$(date +%s%N)
        "$@" >/dev/null 2>&1 || { echo "benchmark command failed: $*" >&2; return 1; }
        e=$(date +%s%N)
        echo $((e - s))
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v n="$1" 'BEGIN {printf "%.1f", n / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# The join benchmarks' common setup (bench-join.sh, profile-join.sh), after tests/lib.sh and
# tests/integration/lib/{swtpm,joind}.sh are sourced: checks that $JOIND (cnos-joind) and $BENCH (the
# bench-join client) are built, then in $T (the new working directory) an EK CA, a swtpm whose EK it
# certified (its TCTI in $tcti), ek-ca.pem and the join service's operator material.
bench_join_setup() {
        JOIND=$BIN/cnos-joind
        BENCH=$BUILD/bench/bench-join
        [ -x "$JOIND" ] || fail "$JOIND not built (make BUILD=$BUILD)"
        [ -x "$BENCH" ] || fail "$BENCH is missing: build it with make BUILD=$BUILD bench"
        cd "$T" || exit 1
        swtpm_ca_setup "$T/ekca" cnos-bench >/dev/null
        swtpm_instance "$T/tpm" --ca "$T/ekca"
        tcti=$(swtpm_start "$T/tpm")
        cat "$T/ekca/issuercert.pem" "$T/ekca/root.pem" >ek-ca.pem
        joind_material bench
}
