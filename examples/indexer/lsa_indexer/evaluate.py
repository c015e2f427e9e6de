"""Offline metrics of an indexer file on a dump's held-out documents, beside the bound (Quest)
scorer refreshed every step and every 64 steps, recency, and the oracle (the window's own
attention): Markdown tables over all held-out refreshes and over the question and answer ones.

    python -m lsa_indexer.evaluate --dump results/indexer-dump --indexer FILE
"""
from __future__ import annotations

import argparse
import sys

from .train import deterministic_cpu

deterministic_cpu()

import numpy as np  # noqa: E402

from . import export, metrics  # noqa: E402
from .dump import Dump  # noqa: E402
from .sampler import SamplerConfig, forced_chunks  # noqa: E402
from .train import make_scorer  # noqa: E402


def table(dump: Dump, indexer: export.IndexerFile, cfg: SamplerConfig, refreshes: np.ndarray) -> str:
    """Rows: (scorer, target) pairs; columns: recall@10%/15%, coverage@10%/15%, top@10%/15%,
    F1@0.5."""
    learned = make_scorer({k: np.asarray(v) for k, v in indexer.params.items()}, indexer.shape, dump,
                          indexer.query_tap, indexer.key_tap)
    rows = [
        ("learned (refresh every 64)", "64-step window", learned, True, False),
        ("bound, query of t-1 (refresh every 64)", "64-step window", metrics.bound_scorer, False, False),
        ("recency", "64-step window", metrics.recency_scorer, False, False),
        ("oracle (the window's attention)", "64-step window", metrics.oracle_scorer, False, False),
        ("learned", "position t", learned, True, True),
        ("bound, query of t-1 (refresh every step)", "position t", metrics.bound_scorer, False, True),
        ("recency", "position t", metrics.recency_scorer, False, True),
    ]
    out = ["| scorer | positives of | recall@10% | recall@15% | coverage@10% | coverage@15% | top@10% "
           "| top@15% | F1@0.5 |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, target, scorer, probabilities, next_position in rows:
        m = metrics.evaluate(dump, refreshes, scorer, cfg, probabilities=probabilities,
                             next_position=next_position)
        f1 = f"{m['f1@0.5']:.3f}" if probabilities else "-"
        out.append(f"| {name} | {target} | {m['recall@0.1']:.3f} | {m['recall@0.15']:.3f} | "
                   f"{m['coverage@0.1']:.3f} | {m['coverage@0.15']:.3f} | {m['top@0.1']:.3f} | "
                   f"{m['top@0.15']:.3f} | {f1} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lsa_indexer.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--dump", required=True)
    p.add_argument("--indexer", required=True)
    p.add_argument("--sink-chunks", type=int, default=None,
                   help="forced first chunks (default: 16 tokens of the dump's chunks)")
    p.add_argument("--recent-chunks", type=int, default=None,
                   help="forced last chunks (default: 64 tokens of the dump's chunks)")
    p.add_argument("--min-layers", type=int, default=None)
    p.add_argument("--kind", choices=("all", "text", "synthetic"), default="all",
                   help="documents whose refreshes count")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    dump = Dump(a.dump)
    indexer = export.read(a.indexer)
    sink, recent = forced_chunks(dump.chunk_tokens, a.sink_chunks, a.recent_chunks)
    cfg = SamplerConfig(sink_chunks=sink, recent_chunks=recent, min_layers=a.min_layers)
    _, val = dump.split()
    if a.kind != "all":
        kinds = np.asarray(dump.doc_kind)[np.asarray(dump.refresh_doc)[val]]
        val = val[kinds == (0 if a.kind == "text" else 1)]
    print(f"{len(val)} held-out refreshes of {a.kind} documents ({a.dump}, {a.indexer})\n")
    print(table(dump, indexer, cfg, val))
    special = val[np.asarray(dump.refresh_kind)[val] != 0]
    if len(special):
        print(f"\n{len(special)} of them in a question or an answer\n")
        print(table(dump, indexer, cfg, special))
    return 0


if __name__ == "__main__":
    sys.exit(main())
