#!/usr/bin/env python3
"""Independent float64 reference of lsa-decode's dense forward pass, for checking it.

Reads the GGUF with the `gguf` package (pip install gguf numpy), dequantizes with gguf's own
decoders, runs a plain Llama forward over the given token ids and prints the top-5 next-token ids
and logits of the last position (the same format as `lsa-decode --ids ... --top5`).

  python3 examples/decoder/tools/reference_logits.py models/SmolLM2-135M-Instruct.Q4_1.gguf 1,2,3
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def main():
    path, ids = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
    r = GGUFReader(path)
    fields = {k: f for k, f in r.fields.items()}

    def meta(key):
        f = fields[key]
        return f.parts[f.data[0]][0]

    tensors = {t.name: t for t in r.tensors}

    def weight(name):
        t = tensors[name]
        dims = [int(x) for x in t.shape]  # ggml order: dims[0] fastest
        a = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(-1)
        return a.reshape(list(reversed(dims))) if len(dims) > 1 else a

    n_layers = int(meta("llama.block_count"))
    n_heads = int(meta("llama.attention.head_count"))
    n_kv = int(meta("llama.attention.head_count_kv"))
    eps = float(meta("llama.attention.layer_norm_rms_epsilon"))
    theta = float(meta("llama.rope.freq_base"))
    embd = weight("token_embd.weight")
    d = embd.shape[1]
    hd = d // n_heads
    n = len(ids)
    x = embd[ids]

    def rms(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w

    pos = np.arange(n)[:, None]
    freq = theta ** (-2.0 * np.arange(hd // 2) / hd)
    ang = pos * freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(v, heads):  # adjacent pairs (x[2i], x[2i+1]), ggml's normal rope
        v = v.reshape(n, heads, hd // 2, 2)
        a, b = v[..., 0], v[..., 1]
        c, s = cos[:, None, :], sin[:, None, :]
        return np.stack([a * c - b * s, a * s + b * c], -1).reshape(n, heads * hd)

    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layers):
        p = f"blk.{l}."
        h = rms(x, weight(p + "attn_norm.weight"))
        q = rope(h @ weight(p + "attn_q.weight").T, n_heads).reshape(n, n_heads, hd)
        k = rope(h @ weight(p + "attn_k.weight").T, n_kv).reshape(n, n_kv, hd)
        v = (h @ weight(p + "attn_v.weight").T).reshape(n, n_kv, hd)
        out = np.zeros((n, n_heads, hd))
        for hh in range(n_heads):
            g = hh // (n_heads // n_kv)
            s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            out[:, hh, :] = s @ v[:, g, :]
        x = x + out.reshape(n, d) @ weight(p + "attn_output.weight").T
        h = rms(x, weight(p + "ffn_norm.weight"))
        gate = h @ weight(p + "ffn_gate.weight").T
        up = h @ weight(p + "ffn_up.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ weight(p + "ffn_down.weight").T
    out_w = weight("output.weight") if "output.weight" in tensors else embd
    logits = rms(x[-1], weight("output_norm.weight")) @ out_w.T
    top = sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:5]
    print("top-5 next tokens:")
    for i in top:
        print(f"  {i:6d}  {logits[i]:10.5f}")


if __name__ == "__main__":
    main()
