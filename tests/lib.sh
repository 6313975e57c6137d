# Shared helpers for the shell test tiers. Source it; it sets `set -euo pipefail`, a private
# scratch directory ($T, removed on exit unless KEEP=1) and a few assertions that name what failed.
set -euo pipefail
CNOS_TOP=${CNOS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$CNOS_TOP/$BUILD ;; esac
BIN=$BUILD/bin
TESTDATA=${TESTDATA:-$(cd "$CNOS_TOP/../shared/testdata" 2>/dev/null && pwd || echo /nonexistent)}
T=$(mktemp -d /tmp/cnos-test.XXXXXX)
_cleanup_hooks=()
_cleanup() {
        local h
        for h in "${_cleanup_hooks[@]}"; do eval "$h" || true; done
        [ "${KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap _cleanup EXIT
on_exit() { _cleanup_hooks+=("$1"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
assert_eq() { # expected actual what
        [ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
        echo "ok: $3"
}
assert_ne() {
        [ "$1" != "$2" ] || fail "$3: both are '$1'"
        echo "ok: $3"
}
# Runs a command that must fail (non-zero exit), and whose stderr must match a pattern.
assert_fails_with() { # pattern what cmd...
        local pat=$1 what=$2 rc=0; shift 2
        "$@" >"$T/.out" 2>"$T/.err" || rc=$?
        [ "$rc" -ne 0 ] || fail "$what: command succeeded: $*"
        grep -qE -- "$pat" "$T/.err" || fail "$what: stderr does not match /$pat/: $(cat "$T/.err")"
        echo "ok: $what (exit $rc: $(head -n 1 "$T/.err"))"
}
need() { local c; for c in "$@"; do command -v "$c" >/dev/null || fail "missing tool $c (install it from ci/)"; done; }
