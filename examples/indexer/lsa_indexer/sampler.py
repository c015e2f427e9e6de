"""Training batches: per refresh, its positives (capped) and random negatives among the chunks the
cache does not force (the sink and the recent window are resident anyway)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dump import Dump


@dataclass(frozen=True)
class SamplerConfig:
    max_positives: int = 64  # positives kept per refresh (a random subset beyond)
    negatives_per_positive: int = 3
    min_negatives: int = 8  # negatives of a refresh without positives
    sink_chunks: int = 1  # forced chunks; the command lines derive both from the dump (forced_chunks)
    recent_chunks: int = 4
    min_layers: int | None = None  # relabel positives (None: the dump's)

    @property
    def width(self) -> int:
        """Candidates per refresh row in a batch."""
        return self.max_positives * (1 + self.negatives_per_positive)


# What lsa-decode and lsa-eval keep resident whatever the scorer: the first 16 tokens (the sink)
# and the last 64 (the recent window).
SINK_TOKENS = 16
RECENT_TOKENS = 64


def forced_chunks(chunk_tokens: int, sink_chunks: int | None = None,
                  recent_chunks: int | None = None) -> tuple[int, int]:
    """The sink and recent window in chunks of `chunk_tokens` tokens: as given, or the decoder's
    SINK_TOKENS and RECENT_TOKENS. Raises ValueError when those are not whole chunks."""
    def chunks(given: int | None, tokens: int, what: str) -> int:
        if given is not None:
            return given
        if chunk_tokens < 1 or tokens % chunk_tokens:
            raise ValueError(f"the {what} window of {tokens} tokens is not a whole number of the dump's "
                             f"{chunk_tokens}-token chunks: pass --{what}-chunks")
        return tokens // chunk_tokens
    return chunks(sink_chunks, SINK_TOKENS, "sink"), chunks(recent_chunks, RECENT_TOKENS, "recent")


def unforced_range(position: int, num_candidates: int, chunk_tokens: int, cfg: SamplerConfig) -> tuple[int, int]:
    """[lo, hi): the complete chunks at `position` that the cache's sink and recent window do not
    force (the recent window counts the partial chunk before `position`, as lsa's policy does)."""
    chunks = -(-position // chunk_tokens)
    return min(cfg.sink_chunks, num_candidates), max(min(num_candidates, chunks - cfg.recent_chunks), 0)


@dataclass
class Batch:
    query: np.ndarray  # [B, d]
    chunks: np.ndarray  # [B, M, d]
    labels: np.ndarray  # [B, M]
    mask: np.ndarray  # [B, M]


def sample_batch(dump: Dump, refreshes: np.ndarray, query_tap: int, key_tap: int, cfg: SamplerConfig,
                 rng: np.random.Generator) -> Batch:
    """One row per refresh: sampled positives first, then negatives, zero-padded to cfg.width."""
    b, m, d = len(refreshes), cfg.width, int(dump.meta["d_model"])
    qi, ki = dump.tap_index(query_tap), dump.tap_index(key_tap)
    batch = Batch(np.zeros((b, d), np.float32), np.zeros((b, m, d), np.float32),
                  np.zeros((b, m), np.float32), np.zeros((b, m), np.float32))
    for row, r in enumerate(refreshes):
        ref = dump.refresh(int(r), cfg.min_layers)
        lo, hi = unforced_range(ref.position, ref.num_candidates, dump.chunk_tokens, cfg)
        pos = ref.positives[(ref.positives >= lo) & (ref.positives < hi)]
        if len(pos) > cfg.max_positives:
            pos = np.sort(rng.choice(pos, cfg.max_positives, replace=False))
        others = np.setdiff1d(np.arange(lo, hi), ref.positives)
        want = max(cfg.min_negatives, cfg.negatives_per_positive * len(pos))
        neg = np.sort(rng.choice(others, min(want, len(others), m - len(pos)), replace=False))
        chosen = np.concatenate([pos, neg]).astype(np.int64)
        first = int(dump.doc_chunk_offsets[ref.doc])
        batch.query[row] = dump.query_features[r, qi]
        batch.chunks[row, : len(chosen)] = dump.chunk_features[first + chosen, ki]
        batch.labels[row, : len(pos)] = 1.0
        batch.mask[row, : len(chosen)] = 1.0
    return batch


@dataclass
class ListBatch:
    query: np.ndarray  # [B, d]
    chunks: np.ndarray  # [B, W, d]
    mass: np.ndarray  # [B, W]: the window's attention on each candidate
    mask: np.ndarray  # [B, W]


def sample_lists(dump: Dump, refreshes: np.ndarray, query_tap: int, key_tap: int, cfg: SamplerConfig,
                 width: int, rng: np.random.Generator) -> ListBatch:
    """One row per refresh with every unforced candidate and its future attention mass (a random
    `width` of them when there are more), zero-padded to `width`: the listwise loss's input."""
    b, d = len(refreshes), int(dump.meta["d_model"])
    qi, ki = dump.tap_index(query_tap), dump.tap_index(key_tap)
    batch = ListBatch(np.zeros((b, d), np.float32), np.zeros((b, width, d), np.float32),
                      np.zeros((b, width), np.float32), np.zeros((b, width), np.float32))
    for row, r in enumerate(refreshes):
        r = int(r)
        position = int(dump.refresh_position[r])
        c_lo, c_hi = int(dump.candidate_offsets[r]), int(dump.candidate_offsets[r + 1])
        lo, hi = unforced_range(position, c_hi - c_lo, dump.chunk_tokens, cfg)
        chosen = np.arange(lo, hi)
        if len(chosen) > width:
            chosen = np.sort(rng.choice(chosen, width, replace=False))
        first = int(dump.doc_chunk_offsets[int(dump.refresh_doc[r])])
        n = len(chosen)
        batch.query[row] = dump.query_features[r, qi]
        batch.chunks[row, :n] = dump.chunk_features[first + chosen, ki]
        batch.mass[row, :n] = dump.future_mass[c_lo + chosen]
        batch.mask[row, :n] = 1.0
    return batch


def refresh_weights(dump: Dump, refreshes: np.ndarray, special_weight: float) -> np.ndarray:
    """Sampling probabilities: refreshes in a question or an answer count special_weight times."""
    kinds = np.asarray(dump.refresh_kind)[refreshes]
    w = np.where(kinds == 0, 1.0, special_weight)
    return w / w.sum()
