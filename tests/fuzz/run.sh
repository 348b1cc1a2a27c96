#!/usr/bin/env bash
# Fuzz the config loader with libFuzzer (clang and Debian's libclang-rt-14-dev).
#   tests/fuzz/run.sh [SECONDS]    default 600; findings are written to tests/fuzz/findings/
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
out=build-fuzz
mkdir -p "$out" tests/fuzz/findings
# shellcheck disable=SC2046 # pkg-config's flags are meant to split into words
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L \
    -std=c11 -Iinclude tests/fuzz/fuzz_config.c src/config.c src/error.c $(pkg-config --cflags --libs yaml-0.1) \
    -o "$out/fuzz_config"
corpus=$out/corpus
mkdir -p "$corpus"
cp tests/fuzz/corpus/* "$corpus/"
"$out/fuzz_config" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
    -artifact_prefix=tests/fuzz/findings/ "$corpus"
