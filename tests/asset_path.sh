#!/bin/sh
# asset_path: a model value that names an existing file is that file, before the asset lookup
# (runtime/hafl_asset.h). From a temp folder holding a copy of stories260K.bin as copy.bin,
# `hafl generate --checkpoint ./copy.bin` and `--checkpoint copy.bin` (a bare name no asset has)
# print exactly what `--checkpoint stories260K.bin` prints; a file there named stories260K.bin
# is used before the asset of that name (a damaged one, so generate fails on it); a bare name that
# is neither a file there nor an asset exits 2 with one line naming the value, the asset places
# and the working directory. stories260K.bin and tok512.bin come through the lookup, as in
# test_generate, and a missing one fails the test with the lookup's reason.
set -u
: "${HAFL_BINARY:?run through ctest}"
hafl=$HAFL_BINARY
work=$(mktemp -d) || { echo "FAIL: cannot create a temp folder"; exit 1; }
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "FAIL: $*"; exit 1; }
cd "$work" || fail "cannot enter $work"
here=$(pwd -P)
greedy="--tokenizer tok512.bin --temperature 0 --steps 40"

# shellcheck disable=SC2086
"$hafl" generate --checkpoint stories260K.bin $greedy >asset.out 2>asset.err \
    || fail "generate with the asset stories260K.bin: $(cat asset.err)"
[ -s asset.out ] || fail "generate with the asset stories260K.bin printed nothing"
model=$("$hafl" assets | awk '$1 == "stories260K.bin" { print $3 }')
[ -f "$model" ] || fail "hafl assets does not show where stories260K.bin is: $("$hafl" assets)"
cp "$model" copy.bin || fail "cannot copy $model"

for value in ./copy.bin copy.bin "$here/copy.bin"; do
    # shellcheck disable=SC2086
    "$hafl" generate --checkpoint "$value" $greedy >copy.out 2>copy.err \
        || fail "--checkpoint $value from $here: $(cat copy.err)"
    cmp -s asset.out copy.out || fail "--checkpoint $value printed '$(cat copy.out)'," \
        "the asset '$(cat asset.out)'"
done

# A file in the working directory comes before the asset of the same name.
echo "not a checkpoint" >stories260K.bin
# shellcheck disable=SC2086
"$hafl" generate --checkpoint stories260K.bin $greedy >local.out 2>local.err
status=$?
if [ $status -ne 2 ] || [ -s local.out ]; then
    fail "a damaged ./stories260K.bin gave status $status (the asset was used?): $(cat local.out)"
fi
rm stories260K.bin

# shellcheck disable=SC2086
HAFL_OFFLINE=1 "$hafl" generate --checkpoint nowhere.bin $greedy >none.out 2>none.err
status=$?
if [ $status -ne 2 ] || [ -s none.out ]; then fail "nowhere.bin gave status $status"; fi
[ "$(wc -l <none.err)" -eq 1 ] || fail "the error is not one line: $(cat none.err)"
if ! grep -q "^hafl generate: nowhere.bin: not found in \$HAFL_ASSETS (" none.err \
    || ! grep -qF "nor in the working directory ($here); not a known asset" none.err; then
    fail "the error does not name the value, the places and the working directory: $(cat none.err)"
fi
echo "asset path: ok, ./copy.bin, copy.bin and $here/copy.bin are the copy; a local file wins"
