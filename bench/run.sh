#!/usr/bin/env bash
# The mpicka benchmark: writes its data with `mpicka synth`, runs `mpicka run`
# on it with 1 and 2 ranks in float32 and float64, and reports from one run on
# one machine: the time of each phase, the useful rate (2*m*m*p per Gram over
# the run's time) against bare BLAS on the same Gram shapes, the 2-rank
# speed-up and the peak memory per rank.
#
#   bench/run.sh [standard|wide|many|all]      (default: standard)
#
# Cases: standard = n 16384, 12 layers x 1024 features; wide = n 4096,
# 4 x 65536; many = n 16384, 96 x 256. All float32 on disk, batch_size 512,
# x against itself, read from the page cache (a first untimed run warms it).
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (3: the run
# with the median time is reported), MPIRUN_FLAGS (extra mpirun flags).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-3}
exe=$build/mpicka
blas=$build/bench/mk_blas_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1
[ -x "$exe" ] && [ -x "$blas" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"

# name n layers features
cases_of() {
    case "$1" in
    standard) echo "standard 16384 12 1024" ;;
    wide) echo "wide 4096 4 65536" ;;
    many) echo "many 16384 96 256" ;;
    all) cases_of standard; cases_of wide; cases_of many ;;
    *) echo "unknown case '$1'" >&2; exit 2 ;;
    esac
}

# Runs mpicka once; prints "SECONDS|PHASES|PEAK_MIB".
one_run() { # file np prec bind
    local out
    out=$(mpirun $4 -np "$2" ${MPIRUN_FLAGS:-} "$exe" run "$data/bench.yaml" \
        --set x.file="$1" --set precision="$3" --set output="$data/out" --quiet)
    local secs phases peak
    secs=$(sed -n 's/.*rank(s), float[0-9]*, \([0-9.]*\) s$/\1/p' <<<"$out")
    phases=$(sed -n 's/.*time per phase (slowest rank): \(.*\); peak.*/\1/p' <<<"$out")
    peak=$(sed -n 's/.*peak memory per rank \([0-9.]*\) MiB.*/\1/p' <<<"$out")
    echo "$secs|$phases|$peak"
}

median_run() { # file np prec bind
    for _ in $(seq "$repeat"); do one_run "$@"; done | sort -t'|' -k1,1n | sed -n "$(( (repeat + 1) / 2 ))p"
}

phase() { sed -n "s/.*, $1 \([0-9.]*\) s.*/\1/p" <<<", $2"; }

printf '%s\n' "batch_size: 512" "x:" "  file: unused" '  layers: ["layer*"]' "output: unused" "plot: false" > "$data/bench.yaml"
echo "| case | precision | ranks | run s | read | centre | wait | gram | ucentre | pairs | bare syrk s | run / bare syrk | bare gemm s | run / bare gemm | useful GFLOP/s | 1 rank / 2 ranks | peak MiB per rank |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for spec in $(cases_of "${1:-standard}" | tr ' ' ':'); do
    IFS=: read -r name n layers features <<<"$spec"
    file="$data/$name.h5"
    [ -f "$file" ] || "$exe" synth "$file" --n "$n" --layers "$layers" --features "$features" --seed 1 >/dev/null
    batches=$(( n / 512 ))
    grams=$(( layers * batches ))
    useful=$(awk -v g="$grams" -v p="$features" 'BEGIN { printf "%.6g", 2 * g * 512 * 512 * p }')
    one_run "$file" 1 float32 "" >/dev/null # warm the page cache
    for prec in float32 float64; do
        read -r _ syrk _ gemm <<<"$("$blas" 512 "$features" "$grams" "$prec")"
        t1=""
        for np in 1 2; do
            IFS='|' read -r secs phases peak <<<"$(median_run "$file" "$np" "$prec" "")"
            [ "$np" = 1 ] && t1=$secs
            # 2 ranks share the bare BLAS work: its time halves at best.
            awk -v c="$name" -v pr="$prec" -v np="$np" -v s="$secs" -v sy="$syrk" -v ge="$gemm" \
                -v u="$useful" -v t1="$t1" -v pk="$peak" \
                -v rd="$(phase read "$phases")" -v ce="$(phase centre "$phases")" -v wa="$(phase wait "$phases")" \
                -v gr="$(phase gram "$phases")" -v uc="$(phase ucentre "$phases")" -v pa="$(phase pairs "$phases")" \
                'BEGIN { sy /= np; ge /= np;
                         printf "| %s | %s | %d | %.3f | %s | %s | %s | %s | %s | %s | %.3f | %.2f | %.3f | %.2f | %.1f | %s | %s |\n",
                         c, pr, np, s, rd, ce, wa, gr, uc, pa, sy, s / sy, ge, s / ge, u / s / 1e9,
                         np == 1 ? "" : sprintf("%.2f", t1 / s), pk }'
        done
        IFS='|' read -r secs phases peak <<<"$(median_run "$file" 1 "$prec" "--bind-to none")"
        awk -v c="$name" -v pr="$prec" -v s="$secs" -v sy="$syrk" -v ge="$gemm" -v u="$useful" -v pk="$peak" \
            -v rd="$(phase read "$phases")" -v ce="$(phase centre "$phases")" -v wa="$(phase wait "$phases")" \
            -v gr="$(phase gram "$phases")" -v uc="$(phase ucentre "$phases")" -v pa="$(phase pairs "$phases")" \
            'BEGIN { printf "| %s | %s | 1, reader on a free core | %.3f | %s | %s | %s | %s | %s | %s | %.3f | %.2f | %.3f | %.2f | %.1f | | %s |\n",
                     c, pr, s, rd, ce, wa, gr, uc, pa, sy, s / sy, ge, s / ge, u / s / 1e9, pk }'
    done
done
rm -rf "$data/out"
