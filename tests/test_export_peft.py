#!/usr/bin/env python3
"""test_export_peft: reads a `hafl export --peft` folder with nothing but the standard library
(struct, json) and checks every value against the run's adapter as `test_export --dump` wrote it.

usage: test_export_peft.py DUMP.json PEFT_DIR BASE_NAME

The dump holds the run's factors as hafl keeps them: per matrix b [R][d_out], a [R][d_in],
merged mb [n][d_out], ma [n][d_in], the scale s, the head [classes][dim + 1], and the base
model's head counts and RoPE pairing ("rope": "adjacent" for llama, "neox" for qwen2). Checked
here, independently of the exporter's code:
- both safetensors files: u64 little-endian header length, a multiple of 8, the JSON header
  padded with fewer than 8 spaces, no duplicate keys, __metadata__ {"format": "pt"}, every
  tensor F32 with data_offsets that tile the data exactly, in name order;
- adapter_config.json: peft_type, task_type, r, lora_alpha, target_modules, dropout, bias,
  fan_in_fan_out, inference_mode, base_model_name_or_path;
- exactly the tensors base_model.model.model.layers.N.<module>.lora_A/B.weight, A [r][d_in],
  B [d_out][r], one r = R + the most merged terms, lora_alpha / r = s to 1e-6;
- A's live and merged rows and B's live columns bit for bit, padding zero, with the rows of
  q_proj / k_proj B of an "adjacent" (llama) base in Hugging Face's rotate-half order (HF row
  h*hs + c*hs/2 + i is hafl row h*hs + 2i + c), computed here, and of a "neox" (qwen2) base in
  hafl's own order, since Hugging Face's qwen2 rotates the same NeoX pairs; without merged
  terms r = R and lora_alpha = s R exactly;
- the delta (lora_alpha / r) B A against P (merged + s B A) element by element, within 1e-6
  of the sum of the products' absolute values (float rounding; a misplaced value is far off);
- classifier_head.safetensors: weight [classes][dim] and bias [classes] bit for bit.
Exit 0 when all hold, else 1 after one line naming the first difference.
"""
import json
import math
import operator
import os
import struct
import sys

MODULES = {"wq": "self_attn.q_proj", "wk": "self_attn.k_proj", "wv": "self_attn.v_proj",
           "wo": "self_attn.o_proj", "w1": "mlp.gate_proj", "w2": "mlp.down_proj",
           "w3": "mlp.up_proj"}


def prefix(name):
    """The PEFT tensor prefix of hafl matrix "L<N>.<w>", and w."""
    layer, weight = name[1:].split(".")
    return "base_model.model.model.layers.%d.%s." % (int(layer), MODULES[weight]), weight


def fail(message):
    print("FAIL " + message)
    sys.exit(1)


def f32(x):
    """The float32 nearest x, as a Python float (the dump's %.9g text is exact for float32)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def same(x, y):
    return struct.pack("<f", x) == struct.pack("<f", y)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        fail("duplicate key in a JSON object: %r" % keys)
    return dict(pairs)


def read_safetensors(path):
    """{name: (shape, values)} after checking the file's structure."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail("%s: %d bytes, no header length" % (path, len(data)))
    (n,) = struct.unpack_from("<Q", data, 0)
    if n % 8 != 0 or 8 + n > len(data):
        fail("%s: header length %d (file %d bytes) is not a multiple of 8 inside the file"
             % (path, n, len(data)))
    text = data[8:8 + n].decode("utf-8")
    if not text.startswith("{") or len(text) - len(text.rstrip(" ")) >= 8:
        fail("%s: header is not JSON padded with fewer than 8 spaces" % path)
    header = json.loads(text, object_pairs_hook=no_duplicates)
    if header.pop("__metadata__", None) != {"format": "pt"}:
        fail("%s: __metadata__ is not {\"format\": \"pt\"}" % path)
    body = data[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        if sorted(info) != ["data_offsets", "dtype", "shape"] or info["dtype"] != "F32":
            fail("%s: %s: %r is not an F32 tensor entry" % (path, name, info))
        begin, end = info["data_offsets"]
        count = 1
        for d in info["shape"]:
            count *= d
        if end - begin != 4 * count or begin < 0 or end > len(body):
            fail("%s: %s: data_offsets %r do not hold shape %r" % (path, name, [begin, end],
                                                                   info["shape"]))
        tensors[name] = (info["shape"], struct.unpack_from("<%df" % count, body, begin))
        spans.append((begin, end, name))
    spans.sort()
    at = 0
    for begin, end, name in spans:
        if begin != at:
            fail("%s: %s starts at %d, expected %d (gap or overlap)" % (path, name, begin, at))
        at = end
    if at != len(body):
        fail("%s: tensors end at %d, data has %d bytes" % (path, at, len(body)))
    order = [name for _, _, name in spans]
    if order != sorted(order):
        fail("%s: data is not in name order" % path)
    return tensors


def rope_rows(d_out, heads):
    """source[hf_row] = hafl row, for Hugging Face's rotate-half q_proj / k_proj."""
    hs = d_out // heads
    half = hs // 2
    source = [0] * d_out
    for h in range(heads):
        for c in range(2):
            for i in range(half):
                source[h * hs + c * half + i] = h * hs + 2 * i + c
    return source


def check_matrix(m, tensors, dump, r, alpha):
    name = m["name"]
    start, weight = prefix(name)
    d_out, d_in, R = m["d_out"], m["d_in"], dump["rank"]
    b, a, mb, ma = m["b"], m["a"], m["mb"], m["ma"]
    n = len(mb)
    shape_a, A = tensors[start + "lora_A.weight"]
    shape_b, B = tensors[start + "lora_B.weight"]
    if shape_a != [r, d_in] or shape_b != [d_out, r]:
        fail("%s: shapes %r and %r, expected [%d, %d] and [%d, %d]"
             % (name, shape_a, shape_b, r, d_in, d_out, r))
    heads = {"wq": dump["n_heads"], "wk": dump["n_kv_heads"]}.get(weight)
    permuted = heads and dump["rope"] == "adjacent"
    source = rope_rows(d_out, heads) if permuted else list(range(d_out))
    for k in range(r):
        want = a[k] if k < R else ma[k - R] if k < R + n else [0.0] * d_in
        for j in range(d_in):
            if not same(A[k * d_in + j], f32(want[j])):
                fail("%s: lora_A[%d][%d] = %r, expected %r" % (name, k, j, A[k * d_in + j],
                                                                want[j]))
    for i in range(d_out):
        for k in range(r):
            if R <= k < R + n:
                continue  # mb / s: checked through the delta
            want = b[k][source[i]] if k < R else 0.0
            if not same(B[i * r + k], f32(want)):
                fail("%s: lora_B[%d][%d] = %r, expected %r (hafl row %d)"
                     % (name, i, k, B[i * r + k], want, source[i]))
    # The delta, row by row in HF order, in double.
    scale, s = alpha / r, dump["scale"]
    columns = [A[j::d_in] for j in range(d_in)]  # column j of A' [r]
    run_terms = [(s, b[k], a[k]) for k in range(R)] + [(1.0, mb[k], ma[k]) for k in range(n)]
    for i in range(d_out):
        row = [scale * x for x in B[i * r:(i + 1) * r]]
        g = source[i]
        for j in range(d_in):
            products = list(map(operator.mul, row, columns[j]))
            have = math.fsum(products)
            bound = math.fsum(map(abs, products))
            want_terms = [w * bk[g] * ak[j] for w, bk, ak in run_terms]
            want = math.fsum(want_terms)
            bound += math.fsum(map(abs, want_terms))
            if abs(have - want) > 1e-6 * bound + 1e-30:
                fail("%s: delta[%d][%d] = %.9g, expected %.9g (hafl row %d)"
                     % (name, i, j, have, want, g))


def main():
    if len(sys.argv) != 4:
        fail("usage: test_export_peft.py DUMP.json PEFT_DIR BASE_NAME")
    with open(sys.argv[1]) as f:
        dump = json.load(f)
    folder, base_name = sys.argv[2], sys.argv[3]
    with open(os.path.join(folder, "adapter_config.json")) as f:
        config = json.load(f, object_pairs_hook=no_duplicates)
    if dump.get("rope") not in ("adjacent", "neox"):
        fail("%s: rope is %r, expected \"adjacent\" or \"neox\"" % (sys.argv[1],
                                                                   dump.get("rope")))
    matrices = dump["matrices"]
    R = dump["rank"]
    most_merged = max(len(m["mb"]) for m in matrices)
    r, alpha = config.get("r"), config.get("lora_alpha")
    fixed = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "lora_dropout": 0.0,
             "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
             "base_model_name_or_path": base_name}
    for key, want in fixed.items():
        if config.get(key) != want or type(config.get(key)) is not type(want):
            fail("adapter_config.json: %s is %r, expected %r" % (key, config.get(key), want))
    modules = {MODULES[m["name"].split(".")[1]].split(".")[1] for m in matrices}
    if sorted(config.get("target_modules", [])) != sorted(modules):
        fail("adapter_config.json: target_modules %r, expected %r"
             % (config.get("target_modules"), sorted(modules)))
    if type(r) is not int or r != R + most_merged:
        fail("adapter_config.json: r %r, expected %d + %d" % (r, R, most_merged))
    if type(alpha) not in (int, float):
        fail("adapter_config.json: lora_alpha %r is not a number" % (alpha,))
    if abs(alpha / r - dump["scale"]) > 1e-6 * dump["scale"]:
        fail("lora_alpha %r / r %d is not the scale %r" % (alpha, r, dump["scale"]))
    if most_merged == 0 and alpha != f32(dump["scale"] * R):
        fail("lora_alpha %r without merged terms, expected %r" % (alpha, dump["scale"] * R))

    tensors = read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    expected = {prefix(m["name"])[0] + part + ".weight" for m in matrices
                for part in ("lora_A", "lora_B")}
    if set(tensors) != expected:
        fail("adapter_model.safetensors: tensors %r, expected %r"
             % (sorted(set(tensors) ^ expected)[:4], "the symmetric difference empty"))
    for m in matrices:
        check_matrix(m, tensors, dump, r, alpha)

    head = read_safetensors(os.path.join(folder, "classifier_head.safetensors"))
    classes, cols = len(dump["head"]), len(dump["head"][0])
    if sorted(head) != ["bias", "weight"] or head["weight"][0] != [classes, cols - 1] \
            or head["bias"][0] != [classes]:
        fail("classifier_head.safetensors: %r" % {k: v[0] for k, v in head.items()})
    for c, row in enumerate(dump["head"]):
        for j in range(cols - 1):
            if not same(head["weight"][1][c * (cols - 1) + j], f32(row[j])):
                fail("classifier head weight[%d][%d]" % (c, j))
        if not same(head["bias"][1][c], f32(row[cols - 1])):
            fail("classifier head bias[%d]" % c)
    print("ok   %s: %d matrices, r %d (live %d), lora_alpha %r, head [%d][%d], %s RoPE rows, "
          "every value checked" % (folder, len(matrices), r, R, alpha, classes, cols - 1,
                                   dump["rope"]))


if __name__ == "__main__":
    main()
