"""Offline metrics of a chunk scorer on a dump's refreshes: recall@K of the lookahead positives,
F1 at score 0.5, the share of the window's attention the chosen chunks hold (coverage@K), and how
often the chosen chunks include the one the window attends to most (top@K: a retrieval's needle).
K is what the cache would have: ceil(budget * chunks) minus the chunks it forces."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .dump import Dump, Refresh
from .sampler import SamplerConfig, unforced_range

# A scorer: (refresh) -> one score per candidate (higher is better).
Scorer = Callable[[Refresh], np.ndarray]


def top_k(scores: np.ndarray, lo: int, hi: int, k: int) -> np.ndarray:
    """The k best of candidates [lo, hi) by score, ties to the lower chunk."""
    order = np.argsort(-scores[lo:hi], kind="stable")
    return lo + order[:k]


def free_slots(position: int, chunk_tokens: int, lo: int, hi: int, num_candidates: int,
               budget: float) -> int:
    """Chunks a budget leaves for the scorer: ceil(budget * chunks) minus the forced ones."""
    chunks = -(-position // chunk_tokens)
    forced = lo + (chunks - hi)
    return max(1, int(np.ceil(budget * chunks)) - forced)


@dataclass
class MetricTotals:
    recall: dict[float, list[float]] = field(default_factory=dict)
    coverage: dict[float, list[float]] = field(default_factory=dict)
    top: dict[float, list[float]] = field(default_factory=dict)
    f1: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        out = {f"recall@{b:g}": float(np.mean(v)) if v else float("nan") for b, v in self.recall.items()}
        out.update({f"coverage@{b:g}": float(np.mean(v)) for b, v in self.coverage.items()})
        out.update({f"top@{b:g}": float(np.mean(v)) if v else float("nan") for b, v in self.top.items()})
        out["f1@0.5"] = float(np.mean(self.f1)) if self.f1 else float("nan")
        return out


def evaluate(dump: Dump, refreshes: Iterable[int], scorer: Scorer, cfg: SamplerConfig,
             budgets: tuple[float, ...] = (0.10, 0.15), probabilities: bool = False,
             next_position: bool = False) -> dict[str, float]:
    """Means over refreshes; recall and F1 skip refreshes without positives among the unforced
    chunks. next_position: the positives are the golden chunks of position t alone (what a scorer
    refreshed every step needs) instead of the whole lookahead window."""
    totals = MetricTotals({b: [] for b in budgets}, {b: [] for b in budgets}, {b: [] for b in budgets})
    min_layers = cfg.min_layers if cfg.min_layers is not None else int(dump.meta["min_layers"])
    for r in refreshes:
        ref = dump.refresh(int(r), cfg.min_layers)
        if next_position:
            lo_c, hi_c = int(dump.candidate_offsets[r]), int(dump.candidate_offsets[r + 1])
            ref_pos = np.flatnonzero(np.asarray(dump.next_layers[lo_c:hi_c]) >= min_layers)
        else:
            ref_pos = ref.positives
        lo, hi = unforced_range(ref.position, ref.num_candidates, dump.chunk_tokens, cfg)
        scores = np.asarray(scorer(ref), dtype=np.float64)
        positives = ref_pos[(ref_pos >= lo) & (ref_pos < hi)]
        total_mass = float(ref.future_mass.sum())
        forced_mass = total_mass - float(ref.future_mass[lo:hi].sum())
        for b in budgets:
            chosen = top_k(scores, lo, hi, free_slots(ref.position, dump.chunk_tokens, lo, hi,
                                                      ref.num_candidates, b))
            if len(positives):
                totals.recall[b].append(len(np.intersect1d(chosen, positives)) / len(positives))
            if total_mass > 0:
                totals.coverage[b].append((forced_mass + float(ref.future_mass[chosen].sum())) / total_mass)
            if hi > lo and ref.future_mass[lo:hi].max() > 0:
                most = lo + int(np.argmax(ref.future_mass[lo:hi]))
                totals.top[b].append(float(most in chosen))
        if probabilities and len(positives):
            predicted = lo + np.flatnonzero(scores[lo:hi] > 0.5)
            hits = len(np.intersect1d(predicted, positives))
            totals.f1.append(2.0 * hits / (len(predicted) + len(positives)))
    return totals.summary()


def bound_scorer(ref: Refresh) -> np.ndarray:
    return ref.bound_scores


def recency_scorer(ref: Refresh) -> np.ndarray:
    return np.arange(ref.num_candidates, dtype=np.float64)


def oracle_scorer(ref: Refresh) -> np.ndarray:
    return ref.future_mass
