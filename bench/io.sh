#!/usr/bin/env bash
# Shuffled and compressed reads, each next to its baseline, from one run on
# one machine: for each case, the variant and its baseline run in turn (A B A
# B ...) and the table gives both medians, the median of the pairwise time
# ratios and the ratio of bytes read.
#
#   bench/io.sh [standard|small|gzip|all]      (default: all)
#
# Data (written once into DATA_DIR by `mpicka synth`; the compressed copies by
# Debian's python3 with h5py, as h5py writes them by default: chunks=True,
# compression="gzip" at level 4, or "lzf"):
#   standard: n 16384, 12 layers x 1024 float32 features, batch_size 512
#   small:    n 10^6, 4 layers x 64 float32 features, batch_size 512
# Cases:
#   standard, small: shuffle true (shuffle_block 1, and blocks of 4 examples,
#     16 KiB, for standard, of 16, 4 KiB, for small) against shuffle false,
#     1 rank; and the example shuffle read through io_uring (the default)
#     against plain pread (MPICKA_IO_URING=0).
#   gzip: the standard case gzip-compressed against the uncompressed file,
#     1 rank x 2 threads (threads: 2, mpirun --bind-to none); at batch_size 512 (chunks of 512 rows,
#     aligned) and 384 (chunks straddle batches); shuffled with shuffle_block
#     512 against the same file unshuffled. The lzf copy is only checked to be
#     refused (Debian's HDF5 has no lzf decoder).
# Time: the run's own ("float32, X s" of the summary: the whole run after MPI
# start-up). Bytes: rchar of /proc/<pid>/io of every mpicka process (bytes
# returned by read system calls, page cache included), summed over ranks, of
# a run with MPICKA_IO_URING=0 (see pair); bench/io_count.sh reads it when
# the process has exited.
# Environment: BUILD_DIR (build), DATA_DIR (bench/data), REPEAT (3 pairs).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
data=${DATA_DIR:-bench/data}
repeat=${REPEAT:-3}
exe=$(realpath "$build/mpicka")
count=$(realpath bench/io_count.sh)
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
[ -x "$exe" ] || { echo "build first: cmake --build $build" >&2; exit 1; }
mkdir -p "$data"
data=$(realpath "$data")

# h5py's defaults for a big array: chunks guessed by h5py, the filter named.
compress() { # in out filter
    [ -f "$2" ] && return
    "$py" - "$1" "$2" "$3" <<'EOF'
import sys, h5py
src, dst, comp = sys.argv[1:4]
with h5py.File(src, "r") as fi, h5py.File(dst + ".tmp", "w", track_order=True) as fo:
    for name in fi:
        d = fi[name]
        o = fo.create_dataset(name, shape=d.shape, dtype=d.dtype, compression=comp, chunks=True)
        step = max(1, (64 << 20) // (d.dtype.itemsize * (d.size // d.shape[0])))
        for i in range(0, d.shape[0], step):
            o[i:i + step] = d[i:i + step]
EOF
    mv "$2.tmp" "$2"
}

synth() { # name n layers features
    [ -f "$data/$1.h5" ] || "$exe" synth "$data/$1.h5" --n "$2" --layers "$3" --features "$4" --seed 5 >/dev/null
}

printf '%s\n' "x:" "  file: unused" '  layers: ["layer*"]' "output: unused" "plot: false" "checkpoint: false" \
    "precision: float32" "batch_size: 512" > "$data/io.yaml"
mpi_flags="" # the gzip case's 2 threads need both cores: --bind-to none

# One run: prints "SECONDS BYTES". "-x VAR=value" first sets VAR for mpicka.
one_run() { # np file [-x VAR=value] settings...
    local np=$1 file=$2 io out secs env=()
    shift 2
    if [ "${1:-}" = -x ]; then env=(-x "$2"); shift 2; fi
    io=$(mktemp)
    # shellcheck disable=SC2086
    out=$(IO_COUNT_OUT=$io mpirun -np "$np" $mpi_flags "${env[@]}" "$count" "$exe" run "$data/io.yaml" --set x.file="$file" \
        --set output="$data/out-io" --force --quiet "$@")
    secs=$(sed -n 's/.*rank(s) x [0-9]* thread(s), float[0-9]*, \([0-9.]*\) s$/\1/p' <<<"$out")
    echo "$secs $(awk '$1 == "rchar:" { s += $2 } END { print s }' "$io")"
    rm -f "$io"
}

# A case: variant A against baseline B, alternating; one table row. The
# bytes come from a first run of each, which also warms the page cache, made
# with pread (MPICKA_IO_URING=0): rchar does not count io_uring's reads, and
# the byte ranges asked for are the same either way.
pair() { # label np fileA settingsA fileB settingsB
    local label=$1 np=$2 fa=$3 sa=$4 fb=$5 sb=$6 runs="" bytes
    # shellcheck disable=SC2086
    bytes="$(MPICKA_IO_URING=0 one_run "$np" "$fa" $sa) $(MPICKA_IO_URING=0 one_run "$np" "$fb" $sb)"
    for _ in $(seq "$repeat"); do
        # shellcheck disable=SC2086
        runs+="$(one_run "$np" "$fa" $sa) $(one_run "$np" "$fb" $sb)"$'\n'
    done
    awk -v label="$label" -v bytes="$bytes" '
        function median(v, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
        NF == 4 { n++; ta[n] = $1; tb[n] = $3; r[n] = $1 / $3 }
        END { split(bytes, b, " "); ba = b[2]; bb = b[4]
              printf "| %s | %.3f | %.3f | %.2f | %.0f | %.0f | %.2f |\n", label, median(ta, n), median(tb, n),
                     median(r, n), ba / 1048576, bb / 1048576, ba / bb }' <<<"$runs"
}

header() {
    echo "| case: variant vs baseline | time s | baseline s | time ratio | MiB read | baseline MiB | bytes ratio |"
    echo "|---|---|---|---|---|---|---|"
}

case_standard() {
    synth standard 16384 12 1024
    local f=$data/standard.h5
    pair "standard: shuffled vs unshuffled" 1 "$f" "--set shuffle=true" "$f" "--set shuffle=false"
    pair "standard: shuffled in blocks of 4 vs unshuffled" 1 "$f" "--set shuffle=true --set shuffle_block=4" \
        "$f" "--set shuffle=false"
    pair "standard: shuffled, io_uring vs pread" 1 "$f" "--set shuffle=true" "$f" \
        "-x MPICKA_IO_URING=0 --set shuffle=true"
}

case_small() {
    synth small 1000000 4 64
    local f=$data/small.h5
    pair "small: shuffled vs unshuffled" 1 "$f" "--set shuffle=true" "$f" "--set shuffle=false"
    pair "small: shuffled in blocks of 16 vs unshuffled" 1 "$f" "--set shuffle=true --set shuffle_block=16" \
        "$f" "--set shuffle=false"
    pair "small: shuffled, io_uring vs pread" 1 "$f" "--set shuffle=true" "$f" \
        "-x MPICKA_IO_URING=0 --set shuffle=true"
}

case_gzip() {
    synth standard 16384 12 1024
    local f=$data/standard.h5 g=$data/standard-gzip.h5 l=$data/standard-lzf.h5 t="--set threads=2"
    compress "$f" "$g" gzip
    mpi_flags="--bind-to none"
    pair "gzip: compressed vs uncompressed, 2 threads" 1 "$g" "$t" "$f" "$t"
    pair "gzip: compressed vs uncompressed, 2 threads, batch 384" 1 "$g" "$t --set batch_size=384" \
        "$f" "$t --set batch_size=384"
    pair "gzip: shuffled in blocks of 512 vs unshuffled, 2 threads" 1 "$g" \
        "$t --set shuffle=true --set shuffle_block=512" "$g" "$t"
    compress "$f" "$l" lzf
    local said
    said=$(mpirun -np 1 "$exe" run "$data/io.yaml" --set x.file="$l" --set output="$data/out-io" --force --quiet \
        2>&1 || true)
    if grep -q "h5py's lzf compression, which this HDF5 library cannot decode" <<<"$said"; then
        echo "| lzf: refused at inspection, naming file, dataset and filter | | | | | | |"
    else
        echo "| lzf: NOT refused as expected | | | | | | |"
    fi
}

header
case "${1:-all}" in
standard | small | gzip) "case_$1" ;;
all) case_standard; case_small; case_gzip ;;
*) echo "unknown case '$1'" >&2; exit 2 ;;
esac
