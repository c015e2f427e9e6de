from pathlib import Path

import numpy as np
import pytest

from lsa_indexer.dump import Dump
from lsa_indexer.sampler import (SamplerConfig, forced_chunks, refresh_weights, sample_batch, sample_lists,
                                unforced_range)
from planted_dump import write_planted_dump


def test_batches_hold_capped_positives_then_three_negatives_each(tmp_path: Path) -> None:
    d = Dump(write_planted_dump(tmp_path / "dump"))
    cfg = SamplerConfig(max_positives=8, negatives_per_positive=3, recent_chunks=4)
    rows = np.arange(d.num_refreshes)
    b = sample_batch(d, rows, 30, 30, cfg, np.random.default_rng(1))
    assert b.chunks.shape == (d.num_refreshes, 32, 16) and b.query.shape == (d.num_refreshes, 16)
    for i, r in enumerate(rows):
        ref = d.refresh(int(r))
        lo, hi = unforced_range(ref.position, ref.num_candidates, d.chunk_tokens, cfg)
        eligible = ref.positives[(ref.positives >= lo) & (ref.positives < hi)]
        pos = int(b.labels[i].sum())
        assert pos == min(len(eligible), 8)
        assert np.all(b.labels[i, :pos] == 1) and np.all(b.labels[i, pos:] == 0)
        negatives = int(b.mask[i].sum()) - pos
        assert negatives == min(max(8, 3 * pos), (hi - lo) - len(eligible), 32 - pos)
        # Every row is a real, unforced candidate of the refresh's document.
        first = int(d.doc_chunk_offsets[ref.doc])
        feats = np.asarray(d.chunk_features[first + lo : first + hi, 0])
        for row in b.chunks[i, : int(b.mask[i].sum())]:
            assert np.any(np.all(feats == row, axis=1))
        assert np.array_equal(b.query[i], d.query_features[r, 0])


def test_sampling_is_seeded_and_the_cache_forced_chunks_never_appear(tmp_path: Path) -> None:
    d = Dump(write_planted_dump(tmp_path / "dump"))
    cfg = SamplerConfig(sink_chunks=2, recent_chunks=6)
    a = sample_batch(d, np.arange(10), 30, 30, cfg, np.random.default_rng(5))
    b = sample_batch(d, np.arange(10), 30, 30, cfg, np.random.default_rng(5))
    assert np.array_equal(a.chunks, b.chunks) and np.array_equal(a.labels, b.labels)
    assert unforced_range(160, 10, 16, cfg) == (2, 4)   # 10 chunks: 2 sink, the last 6 recent
    assert unforced_range(161, 10, 16, cfg) == (2, 5)   # the partial chunk counts as recent
    w = refresh_weights(d, np.arange(24), 8.0)  # refreshes 0 and 12 are question starts
    assert abs(w.sum() - 1) < 1e-12 and w[0] == 8 * w[1]


def test_lists_hold_every_unforced_candidate_with_its_future_mass(tmp_path: Path) -> None:
    d = Dump(write_planted_dump(tmp_path / "dump"))
    cfg = SamplerConfig(sink_chunks=1, recent_chunks=2)
    rows = np.arange(d.num_refreshes)
    width = 256
    b = sample_lists(d, rows, 30, 30, cfg, width, np.random.default_rng(3))
    assert b.chunks.shape == (len(rows), width, 16) and b.mass.shape == (len(rows), width)
    for i, r in enumerate(rows):
        ref = d.refresh(int(r))
        lo, hi = unforced_range(ref.position, ref.num_candidates, d.chunk_tokens, cfg)
        n = hi - lo
        assert n <= width and int(b.mask[i].sum()) == n and not b.mask[i, n:].any()
        first = int(d.doc_chunk_offsets[ref.doc])
        assert np.array_equal(b.chunks[i, :n], d.chunk_features[first + lo : first + hi, 0])
        assert np.array_equal(b.mass[i, :n], ref.future_mass[lo:hi])
    # More candidates than the width: a seeded random subset, mass and features kept together.
    narrow = sample_lists(d, rows, 30, 30, cfg, 3, np.random.default_rng(3))
    again = sample_lists(d, rows, 30, 30, cfg, 3, np.random.default_rng(3))
    assert np.array_equal(narrow.chunks, again.chunks) and np.array_equal(narrow.mass, again.mass)
    assert narrow.mask.sum() == sum(min(3, int(b.mask[i].sum())) for i in range(len(rows)))


def test_forced_chunks_keep_the_decoders_sink_and_recent_tokens_in_the_dumps_chunks() -> None:
    assert forced_chunks(16) == (1, 4)   # 16 and 64 tokens
    assert forced_chunks(4) == (4, 16)
    assert forced_chunks(1) == (16, 64)
    assert forced_chunks(4, 2, None) == (2, 16)   # given values win
    assert forced_chunks(12, 1, 5) == (1, 5)
    with pytest.raises(ValueError, match="sink window of 16 tokens.*12-token chunks: pass --sink-chunks"):
        forced_chunks(12)
    with pytest.raises(ValueError, match="recent window of 64 tokens.*48-token"):
        forced_chunks(48, 1)
