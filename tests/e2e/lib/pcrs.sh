# Reading PCR values out of the files the measured-boot test collects, and printing them side by
# side. Source it after tests/lib.sh. Values are compared as lowercase hex without a 0x prefix.

_pcr_norm() { tr 'A-F' 'a-f' | sed -e 's/^0x//'; }

# PCR N of "N hex" lines (vm_extract_pcrs), or nothing.
pcr_from_list() { # FILE N
        [ -s "$1" ] || return 0
        awk -v n="$2" '$1 == n { print $2 }' "$1" | _pcr_norm
}

# PCR N from cnos-measure predict --json: {"pcrs": {"N": "hex", ...}}.
pcr_from_predict() { # JSON N
        [ -s "$1" ] || return 0
        jq -r --arg n "$2" '.pcrs[$n] // empty' "$1" 2>/dev/null | _pcr_norm || true
}

# PCR N from cnos-measure eventlog --json: .banks.sha256 is either an array indexed by PCR or an
# object keyed by the PCR number.
pcr_from_replay() { # JSON N
        [ -s "$1" ] || return 0
        jq -r --argjson n "$2" '.banks.sha256 | if type == "array" then .[$n] else .[($n | tostring)] end // empty' \
                "$1" 2>/dev/null | _pcr_norm || true
}

# PCR N as tpm2_eventlog replays it (its YAML "pcrs: sha256: N : 0xhex"); a PCR without events is
# not listed there and is zero.
pcr_from_tpm2_eventlog() { # YAML N
        local v
        v=$(awk -v n="$2" '/^pcrs:/ { p = 1; next } p && /^  sha256:/ { b = 1; next } p && /^  [^ ]/ { b = 0 }
                b && $1 == n && $2 == ":" { print $3 }' "$1" | _pcr_norm)
        echo "${v:-0000000000000000000000000000000000000000000000000000000000000000}"
}

# One row of the side-by-side table: PCR, predicted, measured, and a verdict.
pcr_table_header() { # [LAST-COLUMN-TITLE]
        printf '%-4s %-64s  %-64s  %s\n' PCR "predicted (cnos-measure predict)" "measured (guest TPM)" \
                "${1-verdict, replay (cnos-measure eventlog)}"
}
pcr_table_row() { # N PREDICTED MEASURED [NOTE]
        local mark
        if [ -z "$2" ]; then mark="-"
        elif [ "$2" = "$3" ]; then mark="match"
        else mark="DIFFERS"
        fi
        printf '%-4s %-64s  %-64s  %s%s\n' "$1" "${2:--}" "${3:--}" "$mark" "${4:+  $4}"
}

# The events of a tpm2_eventlog YAML on the given PCRs, one line each: number, PCR, type, first
# digest, and the event data when tpm2_eventlog shows it on one line.
events_on_pcrs() { # YAML PCR...
        local want=" ${*:2} "
        awk -v want="$want" '
                function hexbyte(h) { return (index("0123456789abcdef", substr(h, 1, 1)) - 1) * 16 + index("0123456789abcdef", substr(h, 2, 1)) - 1 }
                # EV_EVENT_TAG data: u32 tag id, u32 size, then (here) a NUL-terminated string.
                function tagged(h,   id, i, c, str) {
                        gsub(/"/, "", h); h = tolower(h)
                        id = substr(h, 7, 2) substr(h, 5, 2) substr(h, 3, 2) substr(h, 1, 2)
                        for (i = 17; i < length(h); i += 2) { c = hexbyte(substr(h, i, 2)); if (c == 0) break; str = str sprintf("%c", c) }
                        return "tag 0x" id " \"" str "\""
                }
                function flush() { if (num != "" && index(want, " " pcr " ")) { gsub(/\\0/, "", data); if (type == "EV_EVENT_TAG") data = tagged(data); printf "  #%-3s PCR %-2s %-33s %s %s\n", num, pcr, type, dig, data }
                                   num = ""; pcr = ""; type = ""; dig = ""; data = "" }
                /^- EventNum:/ { flush(); num = $3; next }
                /^pcrs:/ { flush(); exit }
                next_is_data { data = $0; sub(/^ */, "", data); next_is_data = 0; next }
                $1 == "PCRIndex:" { pcr = $2 }
                $1 == "EventType:" { type = $2 }
                $1 == "Digest:" && dig == "" { dig = $2; gsub(/"/, "", dig) }
                $1 == "ImageLengthInMemory:" { data = "image of " $2 " bytes" }
                $1 == "Event:" && NF > 1 && $2 != "|-" { data = $2 }
                $NF == "|-" { next_is_data = 1 }
                END { flush() }' "$1"
}
