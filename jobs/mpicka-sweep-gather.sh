#!/usr/bin/env bash
# The summary of a sweep run by jobs/mpicka-sweep.sbatch: one CSV row per
# line of the sweep file, in its order, from each task's cka.h5.
#   jobs/mpicka-sweep-gather.sh sweep.txt > sweep.csv
# Columns: task, overrides (the line's words as mpicka got them, without the
# shell's quotes, joined by "; ": batch_size=512; x.layers=[a, b]), n, batches, ranks, seconds (the last
# run), seconds_total and segments (over every resumed run), status (done;
# stopped: a checkpoint is waiting; missing: not run or failed), output (the
# folder). Environment: MPICKA (default build/mpicka, else the mpicka on PATH).
set -euo pipefail
sweep=${1:?usage: $0 SWEEP_FILE}
mpicka=${MPICKA:-build/mpicka}
[ -x "$mpicka" ] || mpicka=$(command -v mpicka || echo "$mpicka")
[ -f "$sweep" ] || { echo "$0: no sweep file '$sweep'" >&2; exit 2; }

base=$(basename "$sweep")
[ "${base%.*}" = "$base" ] && base=$base.out || base=${base%.*}
dir=$base
[ "$(dirname "$sweep")" = . ] || dir=$(dirname "$sweep")/$base
csv() { local s=${1//\"/\"\"}; printf '"%s"' "$s"; } # quoted, quotes doubled
echo "task,overrides,n,batches,ranks,seconds,seconds_total,segments,status,output"
k=0
while IFS= read -r line; do
    k=$((k + 1))
    # The folder's name: the same rule as in mpicka-sweep.sbatch.
    parsed=$(xargs -n 1 printf '%s\n' <<< "$line") || { echo "$0: $sweep, line $k: unmatched quote" >&2; exit 2; }
    mapfile -t words <<< "$parsed"
    name=$(printf '%s_' "${words[@]}" | tr -c 'A-Za-z0-9.,=+-' '_' | tr -s '_' | sed 's/^_//; s/_$//' | cut -c 1-100)
    out=$dir/$(printf '%02d-%s' "$k" "$name")
    status=missing values=",,,,,"
    if [ -f "$out/cka.h5" ]; then
        status=done
        # The provenance lines of `mpicka show`: "  label   value".
        values=$("$mpicka" show "$out/cka.h5" | awk '
            /^provenance:/ { p = 1; next }
            p && $1 == "n" { v["n"] = $2 }
            p && $1 == "batches" && NF == 2 { v["b"] = $2 }
            p && $1 == "ranks" { v["r"] = $2 }
            p && $1 == "time" && $2 == "taken" { v["s"] = $3 }
            p && $1 == "seconds_total" { v["t"] = $2 }
            p && $1 == "segments" { v["g"] = $2 }
            END { printf "%s,%s,%s,%s,%s,%s", v["n"], v["b"], v["r"], v["s"], v["t"] == "" ? v["s"] : v["t"],
                  v["g"] == "" ? 1 : v["g"] }')
    elif [ -f "$out/checkpoint.h5" ]; then
        status=stopped
    fi
    overrides=$(printf '%s; ' "${words[@]}")
    printf '%s,%s,%s,%s,%s\n' "$k" "$(csv "${overrides%; }")" "$values" "$status" "$(csv "$out")"
done < <(grep -v '^[[:space:]]*\(#\|$\)' "$sweep")
