"""Several indexers of the same model and taps as one indexer file whose logit is the mean of theirs.

Each member m scores sum_h w_h relu(q_h . k) + offset_m. The merged indexer stacks the members'
heads and concatenates their keys: head h of member m reads only member m's part of the key (its
query is zero elsewhere), so its dot product is member m's. Head weights are divided by the member
count and the offsets averaged, so the merged logit is the members' mean logit, and a top-K by it
is the members' consensus ranking. The members' RMS-norm weights are folded into their projections
(the norm weights of the merged file are ones), since one shared norm cannot carry several. The
format and the C++ runtime are unchanged: it is a wider indexer (heads x members, head_dim x
members).

    python -m lsa_indexer.ensemble --out MERGED.gguf A.gguf B.gguf [...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import export
from .model import IndexerShape


def merge(members: list[export.IndexerFile]) -> export.IndexerFile:
    """The mean-logit ensemble of `members` (at least one; same features, taps and chunking)."""
    if not members:
        raise ValueError("an ensemble needs at least one indexer")
    first = members[0]
    for i, m in enumerate(members[1:], start=1):
        for field in ("query_tap", "key_tap", "chunk_tokens", "model_layers"):
            if getattr(m, field) != getattr(first, field):
                raise ValueError(f"member {i} has {field} {getattr(m, field)}, member 0 has "
                                 f"{getattr(first, field)}")
        if (m.shape.feature_dim, m.shape.norm_eps) != (first.shape.feature_dim, first.shape.norm_eps):
            raise ValueError(f"member {i} reads features of width {m.shape.feature_dim} "
                             f"(eps {m.shape.norm_eps}), member 0 {first.shape.feature_dim} "
                             f"(eps {first.shape.norm_eps})")
    d, n = first.shape.feature_dim, len(members)
    heads = sum(m.shape.num_heads for m in members)
    dim = sum(m.shape.head_dim for m in members)
    key_proj = np.zeros((dim, d), np.float32)
    query_proj = np.zeros((heads, dim, d), np.float32)
    head_proj = np.zeros((heads, d), np.float32)
    head_bias = np.zeros((heads,), np.float32)
    h0 = k0 = 0
    for m in members:
        p, h, dh = m.params, m.shape.num_heads, m.shape.head_dim
        key_proj[k0:k0 + dh] = p["key_proj"] * p["key_norm"][None, :]
        q = (p["query_proj"] * p["query_norm"][None, :]).reshape(h, dh, d)
        query_proj[h0:h0 + h, k0:k0 + dh] = q
        head_proj[h0:h0 + h] = p["head_proj"] * p["query_norm"][None, :] / n
        head_bias[h0:h0 + h] = p["head_bias"] / n
        h0, k0 = h0 + h, k0 + dh
    params = {
        "key_norm": np.ones((d,), np.float32),
        "key_proj": key_proj,
        "query_norm": np.ones((d,), np.float32),
        "query_proj": query_proj.reshape(heads * dim, d),
        "head_proj": head_proj,
        "head_bias": head_bias,
        "logit_offset": np.float32(np.mean([np.float32(m.params["logit_offset"]) for m in members])),
    }
    description = json.dumps({"ensemble": "mean logit",
                              "members": [json.loads(m.description) if m.description.startswith("{")
                                          else m.description for m in members]}, sort_keys=True)
    return export.IndexerFile(IndexerShape(d, heads, dim, first.shape.norm_eps), params,
                              first.query_tap, first.key_tap, first.chunk_tokens,
                              first.model_layers, description, {})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lsa_indexer.ensemble",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="the merged indexer file")
    p.add_argument("members", nargs="+", help="indexer files to merge")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        merged = merge([export.read(path) for path in a.members])
    except ValueError as e:
        print(f"lsa_indexer.ensemble: {e}", file=sys.stderr)
        return 2
    export.write(Path(a.out), merged)
    print(f"lsa_indexer.ensemble: {len(a.members)} indexers -> {a.out} ({merged.shape.num_heads} "
          f"heads x {merged.shape.head_dim})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
