from pathlib import Path

import numpy as np

from lsa_indexer import export, fixture

COMMITTED = Path(__file__).resolve().parents[3] / "tests" / "indexer" / "data" / "tiny.lsa-indexer.gguf"
# The test vectors the forward pass computes (XLA on this CPU); the rest is drawn, not computed.
COMPUTED = ("test.keys", "test.queries", "test.weights", "test.scores")


def test_the_committed_cross_language_fixture_is_what_the_generator_writes(tmp_path: Path) -> None:
    fixture.main([str(tmp_path / "tiny.gguf")])
    assert COMMITTED.exists(), f"{COMMITTED} is missing: python -m lsa_indexer.fixture {COMMITTED}"
    ours, committed = export.read(tmp_path / "tiny.gguf"), export.read(COMMITTED)
    assert (ours.shape, ours.query_tap, ours.key_tap, ours.chunk_tokens, ours.model_layers,
            ours.description) == (committed.shape, committed.query_tap, committed.key_tap,
                                  committed.chunk_tokens, committed.model_layers, committed.description)
    assert sorted(ours.params) == sorted(committed.params)
    for name, value in ours.params.items():
        assert np.array_equal(value, committed.params[name]), name
    assert sorted(ours.extra) == sorted(committed.extra)
    for name, value in ours.extra.items():
        if name in COMPUTED:
            # XLA's code differs between CPUs (AVX2, AVX-512): the last bits may too.
            ref = committed.extra[name]
            np.testing.assert_allclose(value, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max(), err_msg=name)
        else:
            assert np.array_equal(value, committed.extra[name]), name
