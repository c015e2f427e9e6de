"""The cross-language fixture: a small random indexer whose file also carries test inputs and the
trainer's forward pass on them, so the C++ side (tests/indexer/learned_indexer_test.cpp) checks
that it scores exactly as this package does.

    python -m lsa_indexer.fixture OUT.gguf
"""
from __future__ import annotations

import sys

from .train import deterministic_cpu

deterministic_cpu()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from . import export  # noqa: E402
from .model import IndexerShape, init_params, keys, queries  # noqa: E402

SHAPE = IndexerShape(feature_dim=40, num_heads=3, head_dim=24, norm_eps=float(np.float32(1e-5)))


def make(seed: int = 7) -> export.IndexerFile:
    key = jax.random.PRNGKey(seed)
    params = {k: np.asarray(v) for k, v in init_params(SHAPE, key).items()}
    rng = np.random.default_rng(seed)
    # Trained-looking weights: norms away from 1, head weights of both signs, an offset.
    params["key_norm"] = rng.uniform(0.5, 1.5, SHAPE.feature_dim).astype(np.float32)
    params["query_norm"] = rng.uniform(0.5, 1.5, SHAPE.feature_dim).astype(np.float32)
    params["head_proj"] = (params["head_proj"] * 10).astype(np.float32)
    params["head_bias"] = np.array([0.5, -0.2, 0.3], np.float32)
    params["logit_offset"] = np.float32(-0.4)
    chunks = (rng.normal(size=(7, SHAPE.feature_dim)) * 3).astype(np.float32)
    hidden = (rng.normal(size=(3, SHAPE.feature_dim)) * 2).astype(np.float32)
    k = np.asarray(keys(params, chunks, SHAPE.norm_eps))
    q, w = (np.asarray(x) for x in queries(params, hidden, SHAPE))
    dots = np.maximum(np.einsum("rhd,cd->rch", q, k), 0.0)
    scores = 1.0 / (1.0 + np.exp(-(np.einsum("rch,rh->rc", dots, w) + params["logit_offset"])))
    extra = {"test.chunk_features": chunks, "test.query_features": hidden, "test.keys": k,
             "test.queries": q.reshape(3, -1), "test.weights": w, "test.scores": scores.astype(np.float32)}
    return export.IndexerFile(SHAPE, params, query_tap=2, key_tap=1, chunk_tokens=4, model_layers=3,
                              description="lsa-indexer cross-language fixture", extra=extra)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lsa_indexer.fixture OUT.gguf", file=sys.stderr)
        return 2
    export.write(args[0], make())
    return 0


if __name__ == "__main__":
    sys.exit(main())
