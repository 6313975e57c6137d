# Timing helpers for benchmarks. time_ns CMD... prints the wall time of one run in nanoseconds;
# median reads numbers on stdin. Runs are interleaved by the callers so that a burst of load on this
# shared machine hits every contender alike.
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
