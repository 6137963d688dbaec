#!/bin/sh
# A federation on stories260K.gguf gives the same final adapter digest as on stories260K.bin:
# the GGUF checkpoint dequantises to the same float32 weights and its metadata tokenizer equals
# tok512.bin, so every client trains on the same tokens with the same base model. The .gguf run
# uses topologies/tiny.zpl with its tokenizer line removed (the tokenizer then comes from the
# GGUF's metadata) and the checkpoint renamed; both runs are shrunk by the same overrides (two
# rounds of two steps on small data subsets). The base digests differ (each names its own file),
# which nothing in the adapter depends on. Skips (77) when an asset is missing.
set -u
hafl=${HAFL_BINARY:?HAFL_BINARY must name the hafl binary}
src=${HAFL_SOURCE_DIR:?HAFL_SOURCE_DIR must name the source folder}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sed -e '/^    tokenizer = /d' -e 's/^    checkpoint = stories260K\.bin$/    checkpoint = stories260K.gguf/' \
    "$src/topologies/tiny.zpl" >"$work/tiny-gguf.zpl"
if ! grep -q '^    checkpoint = stories260K\.gguf$' "$work/tiny-gguf.zpl" ||
    grep -q '^    tokenizer = ' "$work/tiny-gguf.zpl"; then
    echo "FAIL topologies/tiny.zpl no longer names stories260K.bin and tok512.bin as expected"
    exit 1
fi
for topology in "$src/topologies/tiny.zpl" "$work/tiny-gguf.zpl"; do
    if ! "$hafl" check "$topology" >"$work/check" 2>&1; then
        echo "skipped: $(basename "$topology") does not load here: $(cat "$work/check")"
        exit 77
    fi
done
if ! grep -q '^model/tokenizer = .*stories260K\.gguf$' "$work/check"; then
    echo "FAIL without model/tokenizer the GGUF checkpoint is not its own tokenizer:"
    sed 's/^/    /' "$work/check"
    exit 1
fi

small="--set server/rounds=2 --set clients/local_steps=2 --set data/train_limit=400 \
--set data/test_limit=64 --set data/max_tokens=32 --set logger/run_dir=$work/runs"
digest() { # topology, output file: prints the final digest, or fails the test
    # shellcheck disable=SC2086
    "$hafl" run "$1" $small >"$2" 2>&1
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "FAIL $(basename "$1"): exit status $status" >&2; sed 's/^/    /' "$2" >&2
        exit 1
    fi
    sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$2"
}
bin=$(digest "$src/topologies/tiny.zpl" "$work/bin.out") || exit 1
gguf=$(digest "$work/tiny-gguf.zpl" "$work/gguf.out") || exit 1
if [ -z "$bin" ] || [ "$bin" != "$gguf" ]; then
    echo "FAIL final digests differ: stories260K.bin '$bin', stories260K.gguf '$gguf'"
    exit 1
fi
echo "ok   stories260K.bin and stories260K.gguf: final adapter sha256 $bin"
