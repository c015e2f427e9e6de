"""The indexer file: weights and configuration in one GGUF file (docs/indexer.md), written with the
`gguf` package and read by the decoder's GGUF reader (examples/decoder/indexer_file.cpp)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from .model import IndexerShape, Params

ARCH = "lsa-indexer"
TENSORS = ("key_norm", "key_proj", "query_norm", "query_proj", "head_proj", "head_bias")


@dataclass(frozen=True)
class IndexerFile:
    shape: IndexerShape
    params: dict[str, np.ndarray]
    query_tap: int
    key_tap: int
    chunk_tokens: int
    model_layers: int
    description: str
    extra: dict[str, np.ndarray]  # further tensors (test vectors), written as given


def write(path: str | Path, f: IndexerFile) -> None:
    """Writes the indexer file; tensors are f32, in the order of TENSORS, then `extra`."""
    w = gguf.GGUFWriter(str(path), ARCH)
    w.add_uint32(f"{ARCH}.version", 1)
    w.add_uint32(f"{ARCH}.feature_dim", f.shape.feature_dim)
    w.add_uint32(f"{ARCH}.head_count", f.shape.num_heads)
    w.add_uint32(f"{ARCH}.head_dim", f.shape.head_dim)
    w.add_float32(f"{ARCH}.norm_eps", f.shape.norm_eps)
    w.add_float32(f"{ARCH}.logit_offset", float(f.params["logit_offset"]))
    w.add_uint32(f"{ARCH}.query_tap", f.query_tap)
    w.add_uint32(f"{ARCH}.key_tap", f.key_tap)
    w.add_uint32(f"{ARCH}.chunk_tokens", f.chunk_tokens)
    w.add_uint32(f"{ARCH}.model_layers", f.model_layers)
    w.add_string(f"{ARCH}.description", f.description)
    for name in TENSORS:
        w.add_tensor(name, np.ascontiguousarray(f.params[name], dtype=np.float32))
    for name, value in f.extra.items():
        w.add_tensor(name, np.ascontiguousarray(value, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read(path: str | Path) -> IndexerFile:
    """Reads an indexer file back (for verification and tests)."""
    r = gguf.GGUFReader(str(path))

    def field(name: str):
        f = r.fields[f"{ARCH}.{name}"]
        value = f.parts[f.data[0]]
        return bytes(value).decode() if f.types[0] == gguf.GGUFValueType.STRING else value[0]

    shape = IndexerShape(int(field("feature_dim")), int(field("head_count")), int(field("head_dim")),
                         float(field("norm_eps")))
    tensors = {t.name: np.array(t.data, dtype=np.float32).reshape(tuple(reversed(t.shape.tolist())))
               for t in r.tensors}
    params = {name: tensors.pop(name) for name in TENSORS}
    params["logit_offset"] = np.float32(field("logit_offset"))
    return IndexerFile(shape, params, int(field("query_tap")), int(field("key_tap")),
                       int(field("chunk_tokens")), int(field("model_layers")),
                       str(field("description")), tensors)
