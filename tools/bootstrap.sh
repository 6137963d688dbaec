#!/bin/sh
# Installs the Debian packages hafl needs to build and test, and nothing else.
# Idempotent and quiet when everything is present; runs `apt-get update` only when something is
# missing. Needs root (or sudo) only in that case. Extra package names on the command line are
# added to the list (the benchmark uses this for python3-torch).
set -eu

packages="build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev \
libopenblas-dev libsodium-dev libarchive-dev libcurl4-openssl-dev libpcre2-dev clang \
libclang-rt-14-dev gnuplot-nox iproute2 procps python3-sklearn python3-sentencepiece python3-zmq \
python3-msgpack nodejs npm $*"

missing=""
for p in $packages; do
    # The tokenizer oracle test only needs node and npm on PATH; NodeSource's nodejs package
    # bundles npm and conflicts with Debian's, which apt would "fix" by replacing node.
    case "$p" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "bootstrap: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "bootstrap: need root to install:$missing" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
