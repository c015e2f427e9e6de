from pathlib import Path

import jax
import numpy as np
import pytest

from lsa_indexer import ensemble, export
from lsa_indexer.model import IndexerShape, init_params, score_logits


def member(seed: int, heads: int, head_dim: int, query_tap: int = 30) -> export.IndexerFile:
    shape = IndexerShape(feature_dim=20, num_heads=heads, head_dim=head_dim,
                         norm_eps=float(np.float32(1e-5)))
    params = {k: np.asarray(v) for k, v in init_params(shape, jax.random.PRNGKey(seed)).items()}
    rng = np.random.default_rng(seed)
    # Trained-looking: norm weights away from 1, head weights of both signs, an offset.
    params["key_norm"] = rng.uniform(0.5, 1.5, 20).astype(np.float32)
    params["query_norm"] = rng.uniform(0.5, 1.5, 20).astype(np.float32)
    params["head_proj"] = rng.normal(0, 0.3, (heads, 20)).astype(np.float32)
    params["logit_offset"] = np.float32(rng.normal())
    return export.IndexerFile(shape, params, query_tap, 8, 16, 30, '{"seed": %d}' % seed, {})


def logits_of(f: export.IndexerFile, queries: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    return np.asarray(score_logits({k: np.asarray(v) for k, v in f.params.items()}, f.shape,
                                   queries, chunks))


def test_the_merged_indexer_scores_the_members_mean_logit(tmp_path: Path) -> None:
    members = [member(1, 3, 8), member(2, 2, 5), member(3, 4, 8)]
    rng = np.random.default_rng(0)
    queries = rng.normal(0, 2, (6, 20)).astype(np.float32)
    chunks = rng.normal(0, 2, (6, 11, 20)).astype(np.float32)
    expected = np.mean([logits_of(m, queries, chunks) for m in members], axis=0)
    export.write(tmp_path / "merged.gguf", ensemble.merge(members))
    merged = export.read(tmp_path / "merged.gguf")
    assert (merged.shape.num_heads, merged.shape.head_dim) == (9, 21)
    assert (merged.query_tap, merged.key_tap, merged.chunk_tokens) == (30, 8, 16)
    got = logits_of(merged, queries, chunks)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # One member: the same scores as that member.
    np.testing.assert_allclose(logits_of(ensemble.merge(members[:1]), queries, chunks),
                               logits_of(members[0], queries, chunks), rtol=1e-5, atol=1e-5)


def test_members_must_read_the_same_taps() -> None:
    with pytest.raises(ValueError, match="member 1 has query_tap 20, member 0 has 30"):
        ensemble.merge([member(1, 2, 4), member(2, 2, 4, query_tap=20)])
    with pytest.raises(ValueError, match="at least one"):
        ensemble.merge([])


def test_the_command_line_merges_files(tmp_path: Path) -> None:
    for i in (1, 2):
        export.write(tmp_path / f"m{i}.gguf", member(i, 2, 4))
    assert ensemble.main(["--out", str(tmp_path / "e.gguf"), str(tmp_path / "m1.gguf"),
                          str(tmp_path / "m2.gguf")]) == 0
    assert export.read(tmp_path / "e.gguf").shape.num_heads == 4
