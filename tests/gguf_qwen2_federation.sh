#!/bin/sh
# A federation on a qwen2 GGUF that carries a byte-level BPE tokenizer runs end to end,
# deterministically, and its adapter exports for llama.cpp as qwen2. The model is the tiny one
# test_gguf_qwen2_model --write makes (q/k/v biases, NeoX RoPE, separate output, a gpt2
# tokenizer with Qwen2's pre-tokenizer); the topology is topologies/tiny.zpl with its tokenizer
# line removed, so the tokenizer comes from the GGUF's metadata, the checkpoint set to that file
# and the run shrunk by the overrides tests/gguf_federation.sh uses (two rounds of two steps on
# small data subsets). Requires: `hafl check` to take the GGUF as its own tokenizer; two runs
# to exit 0 with an accuracy line per round and the same `final adapter sha256`, the first
# tokenising 20news with the GGUF's BPE into a fresh cache (HOME is a temporary folder, the
# dataset given by the path `hafl check` resolved) and the second reading that cache; `hafl export
# --gguf-lora` of the run to succeed, `hafl info` to read its architecture as qwen2, and
# test_export --check-gguf to find every value of the run's adapter in it. The model bytes are a
# function of the helper alone, so the digest is too. Skips (77) when the 20news asset is
# missing. Needs HAFL_BINARY, HAFL_SOURCE_DIR, HAFL_QWEN2_MODEL (the test_gguf_qwen2_model
# executable) and HAFL_TEST_EXPORT (the test_export executable).
set -u
hafl=${HAFL_BINARY:?HAFL_BINARY must name the hafl binary}
src=${HAFL_SOURCE_DIR:?HAFL_SOURCE_DIR must name the source folder}
maker=${HAFL_QWEN2_MODEL:?HAFL_QWEN2_MODEL must name the test_gguf_qwen2_model executable}
checker=${HAFL_TEST_EXPORT:?HAFL_TEST_EXPORT must name the test_export executable}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
    echo "FAIL $*"
    exit 1
}

model="$work/tiny-qwen2.gguf"
"$maker" --write "$model" >"$work/write.out" 2>&1 || fail "writing the model: $(cat "$work/write.out")"
[ -s "$model" ] || fail "$maker --write made no model: $(cat "$work/write.out")"

sed -e '/^    tokenizer = /d' "$src/topologies/tiny.zpl" >"$work/tiny-qwen2.zpl"
if grep -q '^    tokenizer = ' "$work/tiny-qwen2.zpl" ||
    ! grep -q '^    checkpoint = ' "$work/tiny-qwen2.zpl"; then
    fail "topologies/tiny.zpl no longer has the model/tokenizer and checkpoint lines expected"
fi
topology="$work/tiny-qwen2.zpl"
model_set="--set model/checkpoint=$model --set model/targets=wq,wk,wv,wo"
# shellcheck disable=SC2086
if ! "$hafl" check "$topology" $model_set >"$work/check" 2>&1; then
    # Only a missing dataset is a reason to skip; the model is ours, so its refusal is a failure.
    if grep -q 'data/path: .*not found' "$work/check"; then
        echo "skipped: the 20news asset is missing: $(grep 'data/path' "$work/check" | head -1)"
        exit 77
    fi
    fail "hafl check refuses the qwen2 topology: $(cat "$work/check")"
fi
grep -qx "model/tokenizer = $model" "$work/check" ||
    fail "without model/tokenizer the qwen2 GGUF is not its own tokenizer: $(cat "$work/check")"

data=$(sed -n 's/^data\/path = //p' "$work/check")
[ -f "$data" ] || fail "hafl check resolved no data/path file: $(cat "$work/check")"
mkdir "$work/home" || fail "cannot make $work/home"

small="--set server/rounds=2 --set clients/local_steps=2 --set data/train_limit=400 \
--set data/test_limit=64 --set data/max_tokens=32"
digest() { # label: runs the federation into $work/runs-LABEL, prints the final digest or fails
    # shellcheck disable=SC2086
    HOME="$work/home" "$hafl" run "$topology" $model_set $small --set data/path="$data" \
        --set logger/run_dir="$work/runs-$1" >"$work/$1.out" 2>&1
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "FAIL run $1: exit status $status" >&2
        sed 's/^/    /' "$work/$1.out" >&2
        exit 1
    fi
    # Accuracy and loss are numbers a round; near chance here (a random model, two short rounds).
    rounds=$(grep -c '^round [12]/2 accuracy [0-9.]* loss [0-9.]* ' "$work/$1.out")
    if [ "$rounds" -ne 2 ] || ! grep -q '^after round 2: test accuracy [0-9.]*, loss' "$work/$1.out"; then
        echo "FAIL run $1: expected an accuracy line for each of 2 rounds and a final one:" >&2
        sed 's/^/    /' "$work/$1.out" >&2
        exit 1
    fi
    sed -n 's/^final adapter sha256 \([0-9a-f]\{64\}\)$/\1/p' "$work/$1.out"
}
first=$(digest 1) || exit 1
for cache in "$work"/home/.cache/hafl/20news-*.tokset; do
    [ -f "$cache" ] || fail "the first run left no tokenised set in $work/home/.cache/hafl"
done
second=$(digest 2) || exit 1
if [ -z "$first" ] || [ "$first" != "$second" ]; then
    fail "final digests differ between two identical runs: '$first', '$second'"
fi
echo "ok   two federations on the qwen2 GGUF: final adapter sha256 $first"
sed -n 's/^after round 2: /     after round 2: /p' "$work/1.out"

run=$(sed -n 's/^run folder //p' "$work/1.out")
[ -d "$run" ] || fail "no run folder in: $(tail -3 "$work/1.out")"
"$hafl" export "$run" --gguf-lora "$work/lora.gguf" --model "$model" >"$work/export.out" 2>&1 ||
    fail "hafl export: $(cat "$work/export.out")"
"$hafl" info "$work/lora.gguf" >"$work/info.out" 2>&1 || fail "hafl info: $(cat "$work/info.out")"
grep -qx 'architecture: qwen2' "$work/info.out" ||
    fail "the exported adapter's architecture is not qwen2: $(cat "$work/info.out")"
"$checker" --check-gguf "$run" "$work/lora.gguf" "$model" ||
    fail "the exported adapter differs from the run's"
echo "ok   hafl export --gguf-lora: $(cat "$work/export.out")"
