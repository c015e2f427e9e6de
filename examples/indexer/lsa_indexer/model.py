"""The memory indexer: a lightning-style dual encoder over the model's residual stream.

Key side, once per complete chunk: k = key_proj @ rms_norm(mean of the chunk's states, key_norm).
Query side, at a refresh, from the state of the token before it: u = rms_norm(h, query_norm),
q = query_proj @ u (heads x head_dim), w = head_proj @ u + head_bias (heads).
Score of a chunk: sigmoid(sum_h w_h * relu(q_h . k) + logit_offset), lsa::LightningScorer's rule.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, jnp.ndarray]


@dataclass(frozen=True)
class IndexerShape:
    feature_dim: int
    num_heads: int = 8
    head_dim: int = 64
    norm_eps: float = 1e-5


def init_params(shape: IndexerShape, key: jax.Array) -> Params:
    """Keys ~ N(0, 1/feature_dim) per weight, queries a further 1/sqrt(head_dim) smaller, so that
    q . k starts O(1); head weights start near 1/heads (a small random part, a positive bias), so
    that initial logits are small and no ReLU starts dead."""
    k1, k2, k3 = jax.random.split(key, 3)
    d, h, dh = shape.feature_dim, shape.num_heads, shape.head_dim
    scale = 1.0 / np.sqrt(d)
    return {
        "key_norm": jnp.ones((d,), jnp.float32),
        "key_proj": jax.random.normal(k1, (dh, d), jnp.float32) * scale,
        "query_norm": jnp.ones((d,), jnp.float32),
        "query_proj": jax.random.normal(k2, (h * dh, d), jnp.float32) * (scale / np.sqrt(dh)),
        "head_proj": jax.random.normal(k3, (h, d), jnp.float32) * (0.1 * scale),
        "head_bias": jnp.full((h,), 1.0 / h, jnp.float32),
        "logit_offset": jnp.zeros((), jnp.float32),
    }


def rms_norm(x: jnp.ndarray, weight: jnp.ndarray, eps: float) -> jnp.ndarray:
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def keys(params: Params, chunk_features: jnp.ndarray, eps: float) -> jnp.ndarray:
    """[..., d] pooled chunk features -> [..., head_dim] keys."""
    return rms_norm(chunk_features, params["key_norm"], eps) @ params["key_proj"].T


def queries(params: Params, hidden: jnp.ndarray, shape: IndexerShape) -> tuple[jnp.ndarray, jnp.ndarray]:
    """[..., d] states -> ([..., heads, head_dim] queries, [..., heads] head weights)."""
    u = rms_norm(hidden, params["query_norm"], shape.norm_eps)
    q = (u @ params["query_proj"].T).reshape(*hidden.shape[:-1], shape.num_heads, shape.head_dim)
    return q, u @ params["head_proj"].T + params["head_bias"]


def logits(q: jnp.ndarray, w: jnp.ndarray, k: jnp.ndarray, offset: jnp.ndarray) -> jnp.ndarray:
    """q [B, H, D], w [B, H], k [B, M, D] -> [B, M] logits (before the sigmoid)."""
    dots = jnp.einsum("bhd,bmd->bmh", q, k)
    return jnp.einsum("bmh,bh->bm", jax.nn.relu(dots), w) + offset


def score_logits(params: Params, shape: IndexerShape, query_features: jnp.ndarray,
                 chunk_features: jnp.ndarray) -> jnp.ndarray:
    """query_features [B, d], chunk_features [B, M, d] -> [B, M] logits."""
    q, w = queries(params, query_features, shape)
    k = keys(params, chunk_features, shape.norm_eps)
    return logits(q, w, k, params["logit_offset"])
