#!/bin/sh
# `hafl export` end to end, read back by independent readers: the GGUF by the project's reader
# (test_export --check-gguf), the PEFT folder by tests/test_export_peft.py (standard library
# only), both against final_adapter.bin (test_export --dump).
#
#   test_export.sh synthetic   a synthetic run with GQA, all seven weights and merged terms
#                              (test_export --make-run), with and without merged terms, and
#                              the merged one on a qwen2 GGUF base (--make-run --qwen2: q/k/v
#                              biases, NeoX RoPE), whose GGUF must say qwen2 and whose PEFT
#                              q_proj / k_proj rows stay in hafl's order (llama's are permuted
#                              for rotate-half); then the checkers must refuse a PEFT file with
#                              one float changed, a GGUF with one float changed, either PEFT
#                              folder checked with the other architecture's row order, and
#                              either GGUF checked against the other architecture's model, so
#                              they can fail.
#   test_export.sh federation  two short federations on stories260K (topologies/tiny.zpl, two
#                              rounds of two steps on small subsets): adaptive (no merged terms,
#                              so the factors must come back bit for bit) and flora (merged
#                              terms). Skips (77) when an asset is missing.
# Needs HAFL_BINARY, HAFL_SOURCE_DIR, HAFL_TEST_EXPORT (the test_export executable) and
# HAFL_PYTHON (a python3).
set -u
hafl=${HAFL_BINARY:?HAFL_BINARY must name the hafl binary}
src=${HAFL_SOURCE_DIR:?HAFL_SOURCE_DIR must name the source folder}
tester=${HAFL_TEST_EXPORT:?HAFL_TEST_EXPORT must name the test_export executable}
python=${HAFL_PYTHON:-python3}
mode=${1:?usage: test_export.sh synthetic|federation}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! "$python" -c 'import json, struct, math' >/dev/null 2>&1; then
    echo "skipped: no python3 at '$python'"
    exit 77
fi

fail() {
    echo "FAIL $*"
    exit 1
}

# export_and_check RUN_DIR MODEL LABEL: both exports, both read back, every value compared.
export_and_check() {
    "$hafl" export "$1" --gguf-lora "$work/$3.gguf" --peft "$work/$3-peft" --model "$2" \
        >"$work/$3.out" 2>&1 || fail "$3: hafl export: $(cat "$work/$3.out")"
    "$tester" --check-gguf "$1" "$work/$3.gguf" "$2" || fail "$3: the GGUF differs from the run"
    "$tester" --dump "$1" "$2" "$work/$3.json" || fail "$3: test_export --dump"
    # hafl info describes the adapter as one (not as a model with no hyperparameters).
    "$hafl" info "$work/$3.gguf" >"$work/$3.info" 2>&1 || fail "$3: hafl info: $(cat "$work/$3.info")"
    grep -q '^type: adapter (lora)$' "$work/$3.info" && grep -q '^lora alpha: ' "$work/$3.info" &&
        grep -q '^lora pairs: [1-9]' "$work/$3.info" ||
        fail "$3: hafl info does not describe the adapter: $(cat "$work/$3.info")"
    "$python" "$src/tests/test_export_peft.py" "$work/$3.json" "$work/$3-peft" "$2" ||
        fail "$3: the PEFT folder differs from the run"
}

# expect_refused LABEL WHAT COMMAND...: COMMAND must fail with a line holding WHAT.
expect_refused() {
    label=$1
    what=$2
    shift 2
    if "$@" >"$work/mutant.out" 2>&1; then
        fail "$label: accepted: $(cat "$work/mutant.out")"
    fi
    grep -q -- "$what" "$work/mutant.out" || fail "$label: no '$what' in: $(cat "$work/mutant.out")"
}

# wrong_rope LABEL FROM TO MODEL: LABEL's dump with "rope" FROM changed to TO must make
# test_export_peft.py refuse LABEL's PEFT folder on a lora_B value.
wrong_rope() {
    sed "s/\"rope\": \"$2\"/\"rope\": \"$3\"/" "$work/$1.json" >"$work/$1-$3.json" ||
        fail "$1: cannot edit the dump"
    grep -q "\"rope\": \"$3\"" "$work/$1-$3.json" || fail "$1: the dump has no rope $2"
    expect_refused "test_export_peft.py with $1 rows taken as $3" "^FAIL .*lora_B" \
        "$python" "$src/tests/test_export_peft.py" "$work/$1-$3.json" "$work/$1-peft" "$4"
}

# poke FILE OFFSET [BYTES]: the float at byte offset OFFSET of FILE replaced by BYTES (printf
# octal escapes, little-endian), 1.5 (0x3fc00000) by default.
poke() {
    printf "${3:-\\000\\000\\300\\077}" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null ||
        fail "cannot change $1"
}

case "$mode" in
synthetic)
    "$tester" --make-run "$work/merged" || fail "test_export --make-run"
    "$tester" --make-run "$work/plain" --no-merged || fail "test_export --make-run --no-merged"
    export_and_check "$work/merged" "$work/merged/model.bin" merged
    export_and_check "$work/plain" "$work/plain/model.bin" plain
    "$tester" --make-run "$work/qwen2" --qwen2 || fail "test_export --make-run --qwen2"
    export_and_check "$work/qwen2" "$work/qwen2/model.gguf" qwen2
    # The row order is checked, not assumed: each PEFT folder fails with the other RoPE pairing,
    # on a q_proj / k_proj lora_B row.
    wrong_rope qwen2 neox adjacent "$work/qwen2/model.gguf"
    wrong_rope merged adjacent neox "$work/merged/model.bin"
    # Each GGUF against the other architecture's model of the same shapes.
    expect_refused "test_export --check-gguf of qwen2 against llama" "general.architecture" \
        "$tester" --check-gguf "$work/qwen2" "$work/qwen2.gguf" "$work/merged/model.bin"
    expect_refused "test_export --check-gguf of llama against qwen2" "general.architecture" \
        "$tester" --check-gguf "$work/merged" "$work/merged.gguf" "$work/qwen2/model.gguf"
    # The checkers can fail: the last float of each file changed to 1.5 must be named as such
    # (the GGUF's last tensor, lora_b [24][3] of ffn_up, ends on the 32-byte alignment, so its
    # last float is the file's last 4 bytes, not padding).
    size=$(wc -c <"$work/plain-peft/adapter_model.safetensors")
    poke "$work/plain-peft/adapter_model.safetensors" $((size - 4))
    expect_refused "test_export_peft.py of a changed adapter_model.safetensors" \
        "^FAIL .*lora_B.* = 1.5, expected" \
        "$python" "$src/tests/test_export_peft.py" "$work/plain.json" "$work/plain-peft" \
        "$work/plain/model.bin"
    size=$(wc -c <"$work/plain.gguf")
    poke "$work/plain.gguf" $((size - 4))
    expect_refused "test_export --check-gguf of a changed GGUF" "lora_b.* = 1.5, expected" \
        "$tester" --check-gguf "$work/plain" "$work/plain.gguf"
    # hafl info counts a lora_a whose lora_b is missing apart (one lora_b renamed).
    "$python" -c 'import sys; d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d.replace(b".lora_b", b".lora_x", 1))' \
        "$work/merged.gguf" "$work/unpaired.gguf" || fail "cannot rename a lora_b"
    "$hafl" info "$work/unpaired.gguf" >"$work/unpaired.info" 2>&1 ||
        fail "hafl info of a GGUF missing a lora_b: $(cat "$work/unpaired.info")"
    grep -q '^lora pairs: 13 (lora_a / lora_b), 1 lora_a without lora_b$' "$work/unpaired.info" ||
        fail "hafl info does not count the lora_a without lora_b: $(cat "$work/unpaired.info")"
    # A value that is not finite in the run's adapter is refused (exit 2), nothing written: the
    # last float of final_adapter.bin, a merged A row of the last matrix, made a NaN.
    cp -r "$work/merged" "$work/nan" || fail "cannot copy the run folder"
    size=$(wc -c <"$work/nan/final_adapter.bin")
    poke "$work/nan/final_adapter.bin" $((size - 4)) '\000\000\300\177'
    "$hafl" export "$work/nan" --gguf-lora "$work/nan.gguf" >"$work/nan.out" 2>&1
    [ $? -eq 2 ] || fail "export of a NaN: exit status not 2: $(cat "$work/nan.out")"
    grep -q "matrix L1.w3: A holds a value that is not finite" "$work/nan.out" ||
        fail "export of a NaN: $(cat "$work/nan.out")"
    [ ! -e "$work/nan.gguf" ] || fail "export of a NaN wrote $work/nan.gguf"
    echo "ok   changed files, the other RoPE row order and the other architecture are refused;"
    echo "     an unpaired lora_a is counted apart; a NaN in the adapter is refused"
    ;;
federation)
    if ! "$hafl" check "$src/topologies/tiny.zpl" >"$work/check" 2>&1; then
        echo "skipped: topologies/tiny.zpl does not load here: $(cat "$work/check")"
        exit 77
    fi
    model=$(sed -n 's/^model\/checkpoint = //p' "$work/check")
    [ -n "$model" ] || fail "hafl check printed no model/checkpoint: $(cat "$work/check")"
    small="--set server/rounds=2 --set clients/local_steps=2 --set data/train_limit=400 \
--set data/test_limit=64 --set data/max_tokens=32"
    for aggregator in adaptive flora; do
        # shellcheck disable=SC2086
        "$hafl" run "$src/topologies/tiny.zpl" $small --set server/aggregator=$aggregator \
            --set logger/run_dir="$work/runs-$aggregator" >"$work/$aggregator.log" 2>&1 ||
            fail "$aggregator: hafl run: $(tail -5 "$work/$aggregator.log")"
        run=$(sed -n 's/^run folder //p' "$work/$aggregator.log")
        [ -d "$run" ] || fail "$aggregator: no run folder in: $(tail -3 "$work/$aggregator.log")"
        export_and_check "$run" "$model" "$aggregator"
        grep -q "+ 0 for merged" "$work/$aggregator.out"
        merged=$?
        if [ "$aggregator" = adaptive ] && [ $merged -ne 0 ]; then
            fail "adaptive: expected no merged terms: $(cat "$work/$aggregator.out")"
        fi
        if [ "$aggregator" = flora ] && [ $merged -eq 0 ]; then
            fail "flora: expected merged terms: $(cat "$work/$aggregator.out")"
        fi
    done
    ;;
*)
    fail "unknown mode '$mode'"
    ;;
esac
