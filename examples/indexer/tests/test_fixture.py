from pathlib import Path

from lsa_indexer import fixture

COMMITTED = Path(__file__).resolve().parents[3] / "tests" / "indexer" / "data" / "tiny.lsa-indexer.gguf"


def test_the_committed_cross_language_fixture_is_what_the_generator_writes(tmp_path: Path) -> None:
    fixture.main([str(tmp_path / "tiny.gguf")])
    assert COMMITTED.exists(), f"{COMMITTED} is missing: python -m lsa_indexer.fixture {COMMITTED}"
    assert (tmp_path / "tiny.gguf").read_bytes() == COMMITTED.read_bytes()
