"""Trains the memory indexer on an lsa-indexer-dump directory and exports the indexer file.

    python -m lsa_indexer.train --dump results/indexer-dump --out indexer.gguf [--help]

Seeded and reproducible: the same dump, flags and package versions give the same file, bit for
bit (XLA runs single-threaded on the CPU for that; see `deterministic_cpu`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


def deterministic_cpu() -> None:
    """Before jax is imported: CPU only, one thread, so float reductions run in a fixed order."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()


deterministic_cpu()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from . import export, metrics  # noqa: E402
from .dump import Dump, Refresh  # noqa: E402
from .loss import binary_loss, mass_ranking_loss  # noqa: E402
from .model import IndexerShape, Params, init_params, keys, queries, score_logits  # noqa: E402
from .sampler import SamplerConfig, forced_chunks, refresh_weights, sample_batch, sample_lists  # noqa: E402


@dataclass(frozen=True)
class TrainConfig:
    query_tap: int = 30
    key_tap: int = 8
    num_heads: int = 8
    head_dim: int = 64
    steps: int = 3000
    batch: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    warmup: int = 100
    focal_gamma: float = 0.0
    special_weight: float = 2.0
    rank_weight: float = 1.0  # weight of the listwise attention-mass loss beside BCE (0: BCE only)
    list_width: int = 256  # candidates per refresh in the listwise loss
    eval_every: int = 100
    patience: int = 8
    seed: int = 0


def make_scorer(params: Params, shape: IndexerShape, dump: Dump, query_tap: int, key_tap: int):
    """A metrics.Scorer with the indexer's sigmoid scores over every candidate of a refresh
    (keys of a document computed once)."""
    qi = dump.tap_index(query_tap)
    cache: dict[int, np.ndarray] = {}

    @jax.jit
    def doc_keys(chunks):
        return keys(params, chunks, shape.norm_eps)

    @jax.jit
    def query(hidden):
        return queries(params, hidden, shape)

    def scorer(ref: Refresh) -> np.ndarray:
        if ref.doc not in cache:
            chunks = dump.doc_chunks(ref.doc, key_tap)
            padded = np.zeros((-(-len(chunks) // 64) * 64, chunks.shape[1]), np.float32)
            padded[: len(chunks)] = chunks
            cache[ref.doc] = np.asarray(doc_keys(padded))
        k = cache[ref.doc][: ref.num_candidates]
        q, w = query(np.asarray(dump.query_features[ref.index, qi]))
        dots = np.maximum(np.asarray(q, np.float64) @ k.T.astype(np.float64), 0.0)  # [H, C]
        logit = np.asarray(w, np.float64) @ dots + float(params["logit_offset"])
        return 1.0 / (1.0 + np.exp(-logit))

    return scorer


def train(dump: Dump, cfg: TrainConfig, sampler: SamplerConfig, log=print,
          evaluated=None) -> tuple[Params, IndexerShape, dict]:
    """Returns the parameters of the best validation step, the shape and the training record.
    evaluated(step, params, shape), when given, sees the parameters at every evaluation."""
    shape = IndexerShape(int(dump.meta["d_model"]), cfg.num_heads, cfg.head_dim)
    train_refreshes, val_refreshes = dump.split()
    if len(train_refreshes) == 0 or len(val_refreshes) == 0:
        raise ValueError("the dump needs documents for both training and validation (>= 10 per kind)")
    rng = np.random.default_rng(cfg.seed)
    params = init_params(shape, jax.random.PRNGKey(cfg.seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, cfg.warmup, cfg.steps)
    opt = optax.chain(optax.clip_by_global_norm(cfg.clip_norm),
                      optax.adamw(schedule, weight_decay=cfg.weight_decay))
    state = opt.init(params)

    @jax.jit
    def step(params, state, query, chunks, labels, mask, lists):
        def loss_fn(p):
            loss = binary_loss(score_logits(p, shape, query, chunks), labels, mask, cfg.focal_gamma)
            if lists is not None:
                l_query, l_chunks, l_mass, l_mask = lists
                ranking = mass_ranking_loss(score_logits(p, shape, l_query, l_chunks), l_mass, l_mask)
                loss = loss + cfg.rank_weight * ranking
            return loss

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    weights = refresh_weights(dump, train_refreshes, cfg.special_weight)
    best, best_params, best_step, waited = -1.0, params, 0, 0
    record = {"validation": []}
    losses: list[float] = []
    t0 = time.time()
    for i in range(1, cfg.steps + 1):
        chosen = rng.choice(train_refreshes, cfg.batch, p=weights)
        b = sample_batch(dump, chosen, cfg.query_tap, cfg.key_tap, sampler, rng)
        lists = None
        if cfg.rank_weight > 0:
            lb = sample_lists(dump, chosen, cfg.query_tap, cfg.key_tap, sampler, cfg.list_width, rng)
            lists = (lb.query, lb.chunks, lb.mass, lb.mask)
        params, state, loss = step(params, state, b.query, b.chunks, b.labels, b.mask, lists)
        losses.append(float(loss))
        if i % cfg.eval_every == 0 or i == cfg.steps:
            scorer = make_scorer(params, shape, dump, cfg.query_tap, cfg.key_tap)
            m = metrics.evaluate(dump, val_refreshes, scorer, sampler, probabilities=True)
            entry = {"step": i, "train_loss": float(np.mean(losses[-cfg.eval_every:])), **m,
                     "seconds": round(time.time() - t0, 1)}
            record["validation"].append(entry)
            log(json.dumps(entry))
            if evaluated is not None:
                evaluated(i, params, shape)
            if m["recall@0.1"] > best:
                best, best_params, best_step, waited = m["recall@0.1"], params, i, 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    log(f"early stop at step {i}: no better validation recall@0.1 since step {best_step}")
                    break
    record.update(best_step=best_step, best_recall=best, train_refreshes=len(train_refreshes),
                  val_refreshes=len(val_refreshes), seconds=round(time.time() - t0, 1))
    return best_params, shape, record


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lsa_indexer.train", description=__doc__.split("\n")[0])
    p.add_argument("--dump", required=True, help="lsa-indexer-dump output directory")
    p.add_argument("--out", required=True, help="the indexer file to write (GGUF)")
    p.add_argument("--record", help="write the training record (JSON) here")
    p.add_argument("--checkpoints", help="also write the indexer file of every evaluation here "
                   "(DIR/step-NNNNN.gguf), to compare steps end to end")
    d = TrainConfig()
    for name, value in asdict(d).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    s = SamplerConfig()
    p.add_argument("--max-positives", type=int, default=s.max_positives)
    p.add_argument("--negatives-per-positive", type=int, default=s.negatives_per_positive)
    p.add_argument("--sink-chunks", type=int, default=None,
                   help="forced first chunks (default: 16 tokens of the dump's chunks)")
    p.add_argument("--recent-chunks", type=int, default=None,
                   help="forced last chunks (default: 64 tokens of the dump's chunks)")
    p.add_argument("--min-layers", type=int, default=None, help="relabel positives (default: the dump's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    dump = Dump(a.dump)
    cfg = TrainConfig(**{k: getattr(a, k) for k in asdict(TrainConfig())})
    sink, recent = forced_chunks(dump.chunk_tokens, a.sink_chunks, a.recent_chunks)
    sampler = SamplerConfig(max_positives=a.max_positives, negatives_per_positive=a.negatives_per_positive,
                            sink_chunks=sink, recent_chunks=recent, min_layers=a.min_layers)
    # The dump's settings and sizes, without its paths (command, model, text): the same data
    # written into another directory gives the same file, bit for bit.
    dump_facts = {k: v for k, v in dump.meta.items() if k not in ("command", "model", "text")}
    dump_facts["model_file"] = Path(str(dump.meta["model"])).name

    def write(path: str | Path, params: Params, shape: IndexerShape, step: int) -> None:
        description = json.dumps({"train": asdict(cfg), "sampler": asdict(sampler), "dump": dump_facts,
                                  "best_step": step}, sort_keys=True)
        export.write(path, export.IndexerFile(shape, {k: np.asarray(v) for k, v in params.items()},
                                              cfg.query_tap, cfg.key_tap, dump.chunk_tokens,
                                              int(dump.meta["model_layers"]), description, {}))

    evaluated = None
    if a.checkpoints:
        Path(a.checkpoints).mkdir(parents=True, exist_ok=True)
        evaluated = lambda step, p, shape: write(Path(a.checkpoints) / f"step-{step:05d}.gguf", p, shape, step)  # noqa: E731
    params, shape, record = train(dump, cfg, sampler, log=lambda s: print(s, flush=True), evaluated=evaluated)
    write(a.out, params, shape, record["best_step"])
    if a.record:
        with open(a.record, "w") as f:
            json.dump(record, f, indent=1)
    print(f"wrote {a.out} (best step {record['best_step']}, validation recall@0.1 {record['best_recall']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
