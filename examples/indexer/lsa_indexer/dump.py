"""The training dump of lsa-indexer-dump (layout in examples/indexer/dump_writer.hpp)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "lsa-indexer-dump/1"
REFRESH_KINDS = ("regular", "question", "answer")
DOC_KINDS = ("text", "synthetic")


@dataclass(frozen=True)
class Refresh:
    """One refresh: its document, position and labels over the candidates (chunks complete at t)."""

    index: int
    doc: int
    position: int
    kind: int
    num_candidates: int
    positives: np.ndarray  # int32, ascending chunk indices
    future_mass: np.ndarray  # float32 [num_candidates]
    bound_scores: np.ndarray  # float32 [num_candidates]
    window_layers: np.ndarray  # uint8 [num_candidates]


class Dump:
    """Memory-mapped arrays of a dump directory, checked for consistency on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise ValueError(f"{self.path}: no meta.json (not an lsa-indexer-dump directory)")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format {self.meta.get('format')!r}, expected {FORMAT!r}")
        load = lambda name: np.load(self.path / f"{name}.npy", mmap_mode="r")  # noqa: E731
        self.doc_tokens = load("doc_tokens")
        self.doc_kind = load("doc_kind")
        self.doc_chunk_offsets = load("doc_chunk_offsets")
        self.chunk_features = load("chunk_features")
        self.refresh_doc = load("refresh_doc")
        self.refresh_position = load("refresh_position")
        self.refresh_kind = load("refresh_kind")
        self.query_features = load("query_features")
        self.candidate_offsets = load("candidate_offsets")
        self.future_mass = load("future_mass")
        self.bound_scores = load("bound_scores")
        self.window_layers = load("window_layers")
        self.next_layers = load("next_layers")
        self.positive_offsets = load("positive_offsets")
        self.positives = load("positives")
        self._check()

    @property
    def taps(self) -> list[int]:
        return list(self.meta["taps"])

    @property
    def chunk_tokens(self) -> int:
        return int(self.meta["chunk_tokens"])

    @property
    def num_docs(self) -> int:
        return len(self.doc_tokens)

    @property
    def num_refreshes(self) -> int:
        return len(self.refresh_doc)

    def _check(self) -> None:
        docs, refreshes = self.num_docs, self.num_refreshes
        taps, d = len(self.taps), int(self.meta["d_model"])
        problems = []
        if self.doc_chunk_offsets.shape != (docs + 1,) or self.doc_kind.shape != (docs,):
            problems.append("document arrays disagree on the document count")
        if self.chunk_features.shape != (int(self.doc_chunk_offsets[-1]), taps, d):
            problems.append(f"chunk_features has shape {self.chunk_features.shape}")
        for name in ("refresh_position", "refresh_kind"):
            if getattr(self, name).shape != (refreshes,):
                problems.append(f"{name} does not have {refreshes} rows")
        if self.query_features.shape != (refreshes, taps, d):
            problems.append(f"query_features has shape {self.query_features.shape}")
        for name in ("candidate_offsets", "positive_offsets"):
            if getattr(self, name).shape != (refreshes + 1,):
                problems.append(f"{name} does not have {refreshes + 1} entries")
        candidates = int(self.candidate_offsets[-1]) if refreshes >= 0 else 0
        for name in ("future_mass", "bound_scores", "window_layers", "next_layers"):
            if getattr(self, name).shape != (candidates,):
                problems.append(f"{name} does not have {candidates} entries")
        if self.positives.shape != (int(self.positive_offsets[-1]),):
            problems.append("positives disagree with positive_offsets")
        if refreshes and (self.refresh_doc.min() < 0 or self.refresh_doc.max() >= docs):
            problems.append("refresh_doc names a document that does not exist")
        if problems:
            raise ValueError(f"{self.path}: inconsistent dump: " + "; ".join(problems))

    def tap_index(self, layer: int) -> int:
        """Position of tap `layer` in the feature arrays."""
        if layer not in self.taps:
            raise ValueError(f"{self.path}: layer {layer} was not tapped (taps: {self.taps})")
        return self.taps.index(layer)

    def refresh(self, r: int, min_layers: int | None = None) -> Refresh:
        """Refresh r; with min_layers, positives are relabelled as window_layers >= min_layers."""
        lo, hi = int(self.candidate_offsets[r]), int(self.candidate_offsets[r + 1])
        window = np.asarray(self.window_layers[lo:hi])
        if min_layers is None:
            pos = np.asarray(self.positives[self.positive_offsets[r] : self.positive_offsets[r + 1]])
        else:
            pos = np.flatnonzero(window >= min_layers).astype(np.int32)
        return Refresh(
            index=r,
            doc=int(self.refresh_doc[r]),
            position=int(self.refresh_position[r]),
            kind=int(self.refresh_kind[r]),
            num_candidates=hi - lo,
            positives=pos,
            future_mass=np.asarray(self.future_mass[lo:hi]),
            bound_scores=np.asarray(self.bound_scores[lo:hi]),
            window_layers=window,
        )

    def doc_chunks(self, doc: int, tap: int) -> np.ndarray:
        """[chunks, d] features of one tap for the complete chunks of a document."""
        lo, hi = int(self.doc_chunk_offsets[doc]), int(self.doc_chunk_offsets[doc + 1])
        return np.asarray(self.chunk_features[lo:hi, self.tap_index(tap)])

    def split(self, every: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Refresh indices of the training and validation documents (every `every`-th document,
        counted per kind, is held out), so both kinds are in both sets."""
        held = np.zeros(self.num_docs, dtype=bool)
        for kind in np.unique(self.doc_kind):
            docs = np.flatnonzero(self.doc_kind == kind)
            held[docs[every - 1 :: every]] = True
        val = held[np.asarray(self.refresh_doc)]
        return np.flatnonzero(~val), np.flatnonzero(val)
