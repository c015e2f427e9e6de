import numpy as np

from lsa_indexer.loss import binary_loss, mass_ranking_loss


def test_bce_matches_its_formula_and_respects_the_mask() -> None:
    logits = np.array([[2.0, -1.0, 0.5, 9.0]], np.float32)
    labels = np.array([[1.0, 0.0, 1.0, 0.0]], np.float32)
    mask = np.array([[1.0, 1.0, 1.0, 0.0]], np.float32)
    p = 1 / (1 + np.exp(-logits[0, :3].astype(np.float64)))
    want = -np.mean([np.log(p[0]), np.log(1 - p[1]), np.log(p[2])])
    assert abs(float(binary_loss(logits, labels, mask)) - want) < 1e-6


def test_focal_loss_weights_hard_examples() -> None:
    logits = np.array([[4.0, -0.2]], np.float32)  # an easy and a hard positive
    labels = np.ones((1, 2), np.float32)
    one = np.array([[1.0, 0.0]], np.float32)
    two = np.array([[0.0, 1.0]], np.float32)
    assert float(binary_loss(logits, labels, one, 0.0)) == float(binary_loss(logits, labels, one))
    # gamma 2 shrinks the easy example's loss far more than the hard one's.
    easy = float(binary_loss(logits, labels, one, 2.0)) / float(binary_loss(logits, labels, one))
    hard = float(binary_loss(logits, labels, two, 2.0)) / float(binary_loss(logits, labels, two))
    assert easy < 0.001 and hard > 0.2
    assert float(binary_loss(logits, labels, np.zeros((1, 2), np.float32))) == 0.0


def test_mass_ranking_loss_is_the_cross_entropy_to_the_mass_distribution() -> None:
    logits = np.array([[1.0, 0.0, -2.0, 7.0], [3.0, 1.0, 0.0, 0.0]], np.float32)
    mass = np.array([[3.0, 1.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    mask = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]], np.float32)
    # Row 0 over its three candidates (the masked one's mass and logit do not count); row 1 has
    # no mass and is left out of the mean.
    z = logits[0, :3].astype(np.float64)
    log_q = z - np.log(np.sum(np.exp(z)))
    want = -(0.75 * log_q[0] + 0.25 * log_q[1])
    assert abs(float(mass_ranking_loss(logits, mass, mask)) - want) < 1e-6
    assert float(mass_ranking_loss(logits, np.zeros_like(mass), mask)) == 0.0


def test_mass_ranking_loss_prefers_the_order_of_the_mass() -> None:
    mass = np.array([[0.7, 0.2, 0.1, 0.0]], np.float32)
    mask = np.ones((1, 4), np.float32)
    ordered = np.array([[3.0, 2.0, 1.0, 0.0]], np.float32)
    reversed_ = ordered[:, ::-1].copy()
    assert float(mass_ranking_loss(ordered, mass, mask)) < float(mass_ranking_loss(reversed_, mass, mask))
