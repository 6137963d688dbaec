#!/bin/sh
# bench-train-vs-peer.sh [BUILD_DIR]: `hafl bench train` side by side with the PyTorch peer
# (torch_lora_bench.py in the shared peers folder beside the checkout), same arguments, in the
# same run: 2 threads, batch 8, 128 tokens, rank 8, on stories260K.bin, on the stories15M
# shape 288,768,6,6,6,32000,256 with random weights, and on that shape with grouped-query
# attention (6 heads over 2 kv heads, as GGUF models of the Llama family have). Prints each
# side's JSON line, then the ratios the model-engine issues set targets for:
#   stories260K tokens/s ratio (target >= 10), 15M-shape tokens/s ratio (target >= 3),
#   15M-shape achieved FLOP rate over the measured sgemm rate (target >= 0.40), and the GQA
#   15M-shape tokens/s ratio.
# Exit status 0 when both sides ran (whether or not the targets are met), 1 otherwise.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
hafl=$build/hafl
peer=$here/../shared/peers/torch_lora_bench.py
python=${PYTHON:-/usr/bin/python3}
steps=${STEPS:-10}
if [ ! -x "$hafl" ]; then
    echo "bench-train-vs-peer: $hafl not built (make, or pass the build folder)" >&2
    exit 1
fi
if [ ! -f "$peer" ]; then
    echo "bench-train-vs-peer: peer script not found at $peer" >&2
    exit 1
fi
ckpt=stories260K.bin
assets=$here/../shared/assets
common="--threads 2 --batch 8 --seq 128 --rank 8 --steps $steps --warmup 2"

field() { # field NAME JSON
    printf '%s\n' "$2" | sed -n "s/.*\"$1\": \([-0-9.eE+]*\).*/\1/p"
}

run_pair() { # run_pair LABEL HAFL_ARGS PEER_ARGS
    ours=$("$hafl" bench train $2 $common)
    theirs=$("$python" "$peer" $3 $common)
    echo "$1 hafl:    $ours"
    echo "$1 pytorch: $theirs"
}

run_pair stories260K "--checkpoint $ckpt" "--checkpoint $assets/stories260K.bin"
small_ours=$(field tokens_per_s "$ours")
small_theirs=$(field tokens_per_s "$theirs")
run_pair stories15M-shape "--shape 288,768,6,6,6,32000,256" "--shape 288,768,6,6,6,32000,256"
big_ours=$(field tokens_per_s "$ours")
big_theirs=$(field tokens_per_s "$theirs")
mfu=$(field mfu "$ours")
run_pair stories15M-shape-gqa "--shape 288,768,6,6,2,32000,256" "--shape 288,768,6,6,2,32000,256"
gqa_ours=$(field tokens_per_s "$ours")
gqa_theirs=$(field tokens_per_s "$theirs")
awk -v a="$small_ours" -v b="$small_theirs" -v c="$big_ours" -v d="$big_theirs" -v m="$mfu" \
    -v e="$gqa_ours" -v f="$gqa_theirs" 'BEGIN {
    printf "ratio stories260K tokens/s: %.1f / %.1f = %.2fx (target >= 10)\n", a, b, a / b
    printf "ratio 15M-shape tokens/s: %.1f / %.1f = %.2fx (target >= 3)\n", c, d, c / d
    printf "15M-shape achieved / measured sgemm: %.3f (target >= 0.40)\n", m
    printf "ratio 15M-shape GQA (6 heads, 2 kv) tokens/s: %.1f / %.1f = %.2fx\n", e, f, e / f
}'
