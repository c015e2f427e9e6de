import os
from pathlib import Path

import numpy as np
import pytest

from lsa_indexer.dump import Dump
from planted_dump import write_planted_dump


def test_reader_gives_the_planted_rows(tmp_path: Path) -> None:
    d = Dump(write_planted_dump(tmp_path / "dump"))
    assert d.num_docs == 20 and d.num_refreshes == 240 and d.taps == [30]
    r = d.refresh(7)
    assert r.doc == 0 and r.num_candidates == len(r.future_mass) == len(r.bound_scores)
    assert np.array_equal(r.positives, np.flatnonzero(r.window_layers >= 3))
    # Relabelling with another min_layers reads window_layers.
    assert np.array_equal(d.refresh(7, min_layers=1).positives, np.flatnonzero(r.window_layers >= 1))
    assert d.doc_chunks(1, 30).shape == (160, 16)
    with pytest.raises(ValueError, match="not tapped"):
        d.doc_chunks(1, 15)


def test_split_holds_out_whole_documents_of_both_kinds(tmp_path: Path) -> None:
    d = Dump(write_planted_dump(tmp_path / "dump"))
    train, val = d.split(every=5)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == d.num_refreshes
    val_docs = set(np.asarray(d.refresh_doc)[val].tolist())
    assert val_docs.isdisjoint(set(np.asarray(d.refresh_doc)[train].tolist()))
    assert {int(d.doc_kind[x]) for x in val_docs} == {0, 1}


def test_inconsistent_dumps_are_refused(tmp_path: Path) -> None:
    path = write_planted_dump(tmp_path / "dump")
    np.save(path / "future_mass.npy", np.load(path / "future_mass.npy")[:-1])
    with pytest.raises(ValueError, match="future_mass"):
        Dump(path)
    with pytest.raises(ValueError, match="meta.json"):
        Dump(tmp_path)


@pytest.mark.skipif("LSA_INDEXER_DUMP" not in os.environ,
                    reason="LSA_INDEXER_DUMP names no dump written by lsa-indexer-dump")
def test_a_dump_of_lsa_indexer_dump() -> None:
    d = Dump(os.environ["LSA_INDEXER_DUMP"])
    assert d.num_refreshes > 0
    for r in range(d.num_refreshes):
        ref = d.refresh(r)
        assert ref.num_candidates == ref.position // d.chunk_tokens
        assert np.all(np.diff(ref.positives) > 0)
        assert ref.positives.size == 0 or (ref.positives[0] >= 0 and ref.positives[-1] < ref.num_candidates)
        assert np.all(ref.future_mass >= 0) and np.all(np.isfinite(ref.bound_scores))
        assert np.array_equal(ref.positives, np.flatnonzero(ref.window_layers >= d.meta["min_layers"]))
    assert np.all(np.isfinite(np.asarray(d.chunk_features)))
