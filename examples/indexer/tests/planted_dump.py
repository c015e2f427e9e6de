"""A small dump written in lsa-indexer-dump's layout, with a planted relevance rule the indexer can
learn: a chunk is a lookahead positive when its features align with the refresh's query features
(a fixed random rotation of them, so that the projections have something to learn)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_planted_dump(path: Path, docs: int = 20, d: int = 16, chunks_per_doc: int = 160,
                       refreshes_per_doc: int = 12, chunk_tokens: int = 16, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    relevance = np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32)
    path.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, list] = {k: [] for k in (
        "chunk_features", "refresh_doc", "refresh_position", "refresh_kind", "query_features",
        "future_mass", "bound_scores", "window_layers", "next_layers", "positives")}
    doc_tokens, doc_kind, chunk_offsets = [], [], [0]
    candidate_offsets, positive_offsets = [0], [0]
    for doc in range(docs):
        feats = rng.normal(size=(chunks_per_doc, d)).astype(np.float32)
        arrays["chunk_features"].append(feats[:, None, :])
        doc_tokens.append(chunks_per_doc * chunk_tokens)
        doc_kind.append(doc % 2)
        chunk_offsets.append(chunk_offsets[-1] + chunks_per_doc)
        for j in range(refreshes_per_doc):
            n = int(rng.integers(chunks_per_doc // 2, chunks_per_doc))
            query = rng.normal(size=d).astype(np.float32)
            strength = feats[:n] @ relevance @ query
            z = strength / strength.std()  # about 5% of the chunks reach 3 layers
            layers = np.clip(np.round(1.5 * z), 0, 30).astype(np.uint8)
            positives = np.flatnonzero(layers >= 3).astype(np.int32)
            arrays["refresh_doc"].append(doc)
            arrays["refresh_position"].append(n * chunk_tokens)
            arrays["refresh_kind"].append(0 if j else 1)
            arrays["query_features"].append(query[None, :])
            arrays["future_mass"].append(np.maximum(strength, 0).astype(np.float32))
            arrays["bound_scores"].append(rng.normal(size=n).astype(np.float32))
            arrays["window_layers"].append(layers)
            arrays["next_layers"].append(layers // 2)
            arrays["positives"].append(positives)
            candidate_offsets.append(candidate_offsets[-1] + n)
            positive_offsets.append(positive_offsets[-1] + len(positives))
    out = {
        "chunk_features": np.concatenate(arrays["chunk_features"]),
        "query_features": np.stack(arrays["query_features"]),
        "refresh_doc": np.array(arrays["refresh_doc"], np.int32),
        "refresh_position": np.array(arrays["refresh_position"], np.int64),
        "refresh_kind": np.array(arrays["refresh_kind"], np.uint8),
        "doc_tokens": np.array(doc_tokens, np.int64),
        "doc_kind": np.array(doc_kind, np.uint8),
        "doc_chunk_offsets": np.array(chunk_offsets, np.int64),
        "candidate_offsets": np.array(candidate_offsets, np.int64),
        "positive_offsets": np.array(positive_offsets, np.int64),
        "next_positive_offsets": np.array(positive_offsets, np.int64),
        "next_positives": np.concatenate(arrays["positives"]),
    }
    for name in ("future_mass", "bound_scores", "window_layers", "next_layers", "positives"):
        out[name] = np.concatenate(arrays[name])
    for name, value in out.items():
        np.save(path / f"{name}.npy", value)
    meta = {"format": "lsa-indexer-dump/1", "command": "planted", "model": "none", "model_layers": 30,
            "model_heads": 9, "d_model": d, "taps": [30], "chunk_tokens": chunk_tokens, "lookahead": 64,
            "top_p": 0.6, "min_layers": 3, "docs": docs, "chunks": chunk_offsets[-1],
            "refreshes": len(out["refresh_doc"]), "tokens": int(sum(doc_tokens))}
    (path / "meta.json").write_text(json.dumps(meta))
    return path
