"""Binary cross-entropy and focal loss on sigmoid scores, over the sampled candidates, and a listwise
ranking loss that orders all of a refresh's candidates by the attention the window puts on them."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def binary_loss(logits: jnp.ndarray, labels: jnp.ndarray, mask: jnp.ndarray, gamma: float = 0.0) -> jnp.ndarray:
    """Mean over masked entries of BCE(sigmoid(logits), labels), focal-weighted by
    (1 - p_t)^gamma when gamma > 0 (gamma = 0: plain BCE)."""
    log_p = jax.nn.log_sigmoid(logits)
    log_not_p = jax.nn.log_sigmoid(-logits)
    bce = -(labels * log_p + (1.0 - labels) * log_not_p)
    if gamma > 0.0:
        p_t = jnp.exp(labels * log_p + (1.0 - labels) * log_not_p)
        bce = bce * (1.0 - p_t) ** gamma
    return jnp.sum(bce * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def mass_ranking_loss(logits: jnp.ndarray, mass: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Mean over rows with attention mass of the cross-entropy from the row's mass distribution
    (mass / its sum over the masked candidates) to the softmax of its logits over those candidates.
    Top-K selection needs the order more than the probabilities, and the chunk that holds most of
    the window's attention (the needle of a retrieval) weighs most here, unlike in BCE, where it
    is one positive among dozens."""
    masked = jnp.where(mask > 0, logits, -1e9)
    log_q = jax.nn.log_softmax(masked, axis=-1)
    m = jnp.where(mask > 0, mass, 0.0)
    total = jnp.sum(m, axis=-1)
    p = m / jnp.maximum(total, 1e-30)[:, None]
    ce = -jnp.sum(jnp.where(mask > 0, p * log_q, 0.0), axis=-1)
    rows = (total > 0).astype(logits.dtype)
    return jnp.sum(ce * rows) / jnp.maximum(jnp.sum(rows), 1.0)
