#!/usr/bin/env bash
# Fuzz with libFuzzer (clang and Debian's libclang-rt-14-dev):
#   tests/fuzz/run.sh [SECONDS] [config|checkpoint|session]
# config (default): the config loader, from the seed corpus tests/fuzz/corpus/;
# checkpoint: the checkpoint reader and its checks, on byte patches of a valid
# checkpoint; session: a library session's merged state and probe bytes
# (mpicka/session.h), on byte patches of valid ones, re-sealed or not.
# Findings are written to tests/fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
target=${2:-config}
out=build-fuzz
mkdir -p "$out" tests/fuzz/findings
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L -std=c11 -Iinclude"
corpus=$out/corpus-$target
mkdir -p "$corpus"
case "$target" in
config)
    # shellcheck disable=SC2046,SC2086 # pkg-config's and our flags are meant to split into words
    clang $flags tests/fuzz/fuzz_config.c src/config/keys.c src/config/config.c src/config/yamltree.c src/config/emit.c src/config/measures_cfg.c \
        src/base/error.c src/base/file.c \
        src/plot/plot.c src/plot/plot_render.c src/measures/measures.c src/measures/gram_measures.c src/maths/par.c $(pkg-config --cflags --libs yaml-0.1 cairo openblas) -lm \
        -o "$out/fuzz_config"
    cp tests/fuzz/corpus/* "$corpus/"
    "$out/fuzz_config" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
        -artifact_prefix=tests/fuzz/findings/ "$corpus" ;;
checkpoint)
    # HDF5 keeps some allocations until exit: leaks are not looked for here.
    # shellcheck disable=SC2046,SC2086
    clang $flags tests/fuzz/fuzz_checkpoint.c src/reduce/checkpoint.c src/reduce/h5write.c src/plan/plan.c src/reduce/accum.c src/base/error.c src/base/log.c src/base/file.c \
        $(pkg-config --cflags --libs hdf5-openmpi) $(pkg-config --cflags --libs ompi-c) -o "$out/fuzz_checkpoint"
    "$out/fuzz_checkpoint" -max_total_time="$seconds" -max_len=256 -timeout=10 -detect_leaks=0 \
        -artifact_prefix=tests/fuzz/findings/ "$corpus" ;;
session)
    # Every layer up to the session, instrumented; HDF5's allocations kept to exit, as above.
    # shellcheck disable=SC2046,SC2086
    clang $flags -DMPICKA_VERSION='"fuzz"' tests/fuzz/fuzz_session.c \
        $(ls src/{base,maths,measures,plot,plan,config,io,reduce,result,job,tools,session}/*.c) \
        $(pkg-config --cflags --libs hdf5-openmpi ompi-c openblas yaml-0.1 cairo libdeflate) -lm -lpthread \
        -o "$out/fuzz_session"
    "$out/fuzz_session" -max_total_time="$seconds" -max_len=256 -timeout=10 -detect_leaks=0 \
        -artifact_prefix=tests/fuzz/findings/ "$corpus" ;;
*) echo "usage: $0 [SECONDS] [config|checkpoint|session]" >&2; exit 2 ;;
esac
