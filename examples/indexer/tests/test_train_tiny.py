from pathlib import Path

import numpy as np
import pytest

from lsa_indexer import metrics
from lsa_indexer.dump import Dump
from lsa_indexer.sampler import SamplerConfig
from lsa_indexer.train import TrainConfig, make_scorer, train
from planted_dump import write_planted_dump


# (rank weight, how far the training loss must fall): the listwise loss has a floor, the entropy
# of each refresh's attention-mass distribution, so the sum of both losses falls by less.
@pytest.mark.parametrize("rank_weight,loss_ratio", [(0.0, 0.8), (1.0, 0.9)])
def test_a_tiny_training_run_learns_the_planted_rule(tmp_path: Path, rank_weight: float,
                                                     loss_ratio: float) -> None:
    d = Dump(write_planted_dump(tmp_path / "dump", docs=40))
    cfg = TrainConfig(query_tap=30, key_tap=30, num_heads=4, head_dim=16, steps=300, batch=16,
                      lr=3e-3, warmup=20, eval_every=50, patience=100, special_weight=1.0,
                      rank_weight=rank_weight)
    sampler = SamplerConfig(max_positives=16)
    seen: dict[int, dict] = {}
    params, shape, record = train(d, cfg, sampler, log=lambda s: None,
                                  evaluated=lambda step, p, _: seen.update({step: p}))
    assert sorted(seen) == [v["step"] for v in record["validation"]] == list(range(50, 301, 50))
    assert all(np.array_equal(params[k], seen[record["best_step"]][k]) for k in params)
    first, last = record["validation"][0], record["validation"][-1]
    assert last["train_loss"] < loss_ratio * first["train_loss"]
    _, val = d.split()
    learned = metrics.evaluate(d, val, make_scorer(params, shape, d, 30, 30), sampler)
    rng = np.random.default_rng(0)
    chance = metrics.evaluate(d, val, lambda r: rng.random(r.num_candidates), sampler)
    assert learned["recall@0.1"] > chance["recall@0.1"] + 0.15
    assert record["best_recall"] == max(v["recall@0.1"] for v in record["validation"])
