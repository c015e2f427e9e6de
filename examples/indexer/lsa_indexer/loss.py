"""Binary cross-entropy and focal loss on sigmoid scores, over the sampled candidates."""
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
