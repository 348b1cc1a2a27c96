#!/usr/bin/env bash
# Set up mpicka on Debian 12 and either run the demo or the test suite.
#   scripts/setup.sh demo   install what is missing, build, make synthetic data, run on 2 ranks
#   scripts/setup.sh test   install what is missing, build, run the whole test suite
# Environment: BUILD_DIR (default build), JOBS (default: number of cores).
set -euo pipefail

mode=${1:-demo}
case "$mode" in demo|test) ;; *) echo "usage: $0 demo|test" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}

packages="build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
          libopenblas-dev libyaml-dev check libcairo2-dev libdeflate-dev liburing-dev procps"
# Only the tests need these: Debian's python3 with the exporter's modules
# (python/, tests/hostile), pip and venv for the install test (tests/install),
# pandas for the results' data frames, and a real Slurm cluster (tests/slurm).
if [ "$mode" = test ]; then
    packages="$packages python3-numpy python3-h5py python3-torch python3-torchvision python3-pytest python3-pip
              python3-venv python3-pandas slurm-wlm munge"
fi
missing=$(for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done | xargs)
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
    else
        echo "mpicka needs these Debian packages; install them with:" >&2
        echo "  sudo apt-get install -y --no-install-recommends $missing" >&2
        exit 1
    fi
fi

python_tests=AUTO; [ "$mode" = test ] && python_tests=ON   # the test mode installed their packages
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMPICKA_PYTHON_TESTS=$python_tests
cmake --build "$build" -j "$jobs"

# Open MPI refuses root and more ranks than cores unless told; CI is both.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

if [ "$mode" = test ]; then
    ctest --test-dir "$build" --output-on-failure -j "$jobs"
    exit
fi

mkdir -p demo
"$build/mpicka" synth demo/model_a.h5 --n 4096 --layers 8 --features 64,128,128,256,256,512,512,10 \
    --dtype f32 --corr 0.85 --seed 1 --relu --offset 0.5
"$build/mpicka" synth demo/model_b.h5 --n 4096 --layers 6 --features 64,8x4x4,256,256,512,10 \
    --dtype f16 --corr 0.7 --seed 1
mpirun -np 2 "$build/mpicka" run configs/demo.yaml
