from pathlib import Path

import jax
import numpy as np

from lsa_indexer import export
from lsa_indexer.model import IndexerShape, init_params


def test_the_indexer_file_round_trips_bit_for_bit(tmp_path: Path) -> None:
    shape = IndexerShape(feature_dim=24, num_heads=3, head_dim=8, norm_eps=float(np.float32(1e-5)))
    params = {k: np.asarray(v) for k, v in init_params(shape, jax.random.PRNGKey(3)).items()}
    params["logit_offset"] = np.float32(-0.75)
    extra = {"test.vector": np.arange(6, dtype=np.float32).reshape(2, 3)}
    f = export.IndexerFile(shape, params, 30, 15, 16, 30, '{"note": "test"}', extra)
    export.write(tmp_path / "a.gguf", f)
    back = export.read(tmp_path / "a.gguf")
    assert back.shape == shape
    assert (back.query_tap, back.key_tap, back.chunk_tokens, back.model_layers) == (30, 15, 16, 30)
    assert back.description == '{"note": "test"}'
    for name in export.TENSORS:
        assert back.params[name].shape == params[name].shape
        assert np.array_equal(back.params[name], params[name])
    assert back.params["logit_offset"] == np.float32(-0.75)
    assert np.array_equal(back.extra["test.vector"], extra["test.vector"])
    # The same content gives the same bytes.
    export.write(tmp_path / "b.gguf", f)
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()
