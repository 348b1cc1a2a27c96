#!/usr/bin/env bash
# In-process CKA (mpicka.compare) against export then `mpicka run`, on the
# same models and data, in one run on one machine (issue 20): two ResNet-18s
# (random weights) on N images of PX px, nine layers each, batch_size 256.
# The routes alternate REPEAT times (A B A B ...); the table gives each
# command's median wall time, median CPU time (user + sys of all its
# processes: less sensitive than wall time to other work on the machine),
# and its largest peak memory (max RSS of the
# largest process, /usr/bin/time -v), and the bytes each route leaves on
# disk (activations and result). Target: compare takes no longer than the
# export alone and writes only the result.
#
#   bench/inprocess.sh            # N=2048 PX=64 NP=2 (ranks of mpicka run) REPEAT=3
#
# Environment: BUILD_DIR (build; libmpicka.so is loaded from there), N, PX,
# NP, REPEAT, WORK (a temporary folder, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${BUILD_DIR:-build}")
n=${N:-2048}
px=${PX:-64}
np=${NP:-2}
repeat=${REPEAT:-3}
work=${WORK:-$(mktemp -d)}
trap 'rm -rf "$work"' EXIT
export PYTHONPATH=$PWD/python MPICKA_BUILD=$build PYTHONDONTWRITEBYTECODE=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
py=/usr/bin/python3

timed() {   # tag, command...: appends "wall_s rss_mib cpu_s" to $work/tag.times
    local tag=$1
    local log=$work/$tag.time
    shift
    /usr/bin/time -v "$@" >"$work/$tag.out" 2>"$log" || { cat "$work/$tag.out" "$log" >&2; exit 1; }
    awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; w = s}
                /Maximum resident set size/ {r = $2 / 1024}
                /(User|System) time \(seconds\)/ {c += $2}
                END {printf "%.2f %.0f %.2f\n", w, r, c}' "$log" >>"$work/$tag.times"
}

row() {   # label, tag: median wall, median CPU (user + sys, all processes), largest peak
    local cpu
    cpu=$(cut -d' ' -f3 "$work/$2.times" | sort -n | awk '{c[NR] = $1} END {print c[int((NR + 1) / 2)]}')
    sort -n "$work/$2.times" | awk -v label="$1" -v cpu="$cpu" '{w[NR] = $1; if ($2 > r) r = $2}
        END {printf "%-28s %9.1f s %9.1f s %9d MiB   (walls: ", label, w[int((NR + 1) / 2)], cpu, r;
             for (i = 1; i <= NR; i++) printf "%s%s", w[i], i < NR ? " " : ")\n"}'
}

bytes() { du -sb "$1" 2>/dev/null | cut -f1; }

echo "two ResNet-18s, n=$n, ${px}x${px}, 9 layers, batch_size 256; torch threads: $($py -c 'import torch; print(torch.get_num_threads())'); mpicka run on $np ranks; $repeat runs each, alternating"
for _ in $(seq "$repeat"); do
    rm -rf "$work/inproc" "$work/files"
    timed compare $py bench/inprocess.py compare "$work/inproc" "$n" "$px"
    timed export $py bench/inprocess.py export "$work/files" "$n" "$px"
    timed run mpirun -np "$np" "$build/mpicka" run "$work/files/run.yaml" --quiet
done
printf '%-28s %11s %11s %13s\n' route "median wall" "median CPU" "peak RSS"
row "compare (in-process)" compare
row "export" export
row "mpicka run ($np ranks)" run
echo "bytes on disk: compare $(bytes "$work/inproc") (result only: $(ls "$work/inproc/out" | tr '\n' ' '))"
echo "               export + run $(bytes "$work/files") (activations $(bytes "$work/files/acts"), result $(bytes "$work/files/out"))"
$py - "$work" <<'PY'
import sys, h5py, numpy as np
w = sys.argv[1]
a, b = (h5py.File(f"{w}/{d}/out/cka.h5", "r")["cka"][()] for d in ("inproc", "files"))
print("same /cka bits on both routes:", a.tobytes() == b.tobytes(), "; max |diff|", float(np.nanmax(np.abs(a - b))))
PY
