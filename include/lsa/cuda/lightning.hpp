// Lightning indexer scoring of all chunks of one sequence on the device.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/scorer_config.hpp"

namespace lsa::cuda {

/// How the device computes the q . k products (the rest is fp32 everywhere).
enum class LightningMath : uint8_t {
  kAuto,         ///< kTensorSplit where it applies, else kCudaCore
  kCudaCore,     ///< fp32 FMAs on the CUDA cores: the readable reference; any head_dim % 4 == 0
  kTensorSplit,  ///< fp16 tensor cores with the query split into two fp16 terms (about fp32
                 ///< accuracy); head_dim 128, at most 6 layers
  kTensorFast,   ///< fp16 tensor cores with the query rounded to fp16 after a per-head power-of-two
                 ///< scale (about 1e-4 relative logit error); same shapes as kTensorSplit
};

/// Device inputs of one sequence's scoring; the layouts are LightningScorer's.
struct LightningInput {
  const std::byte* d_rows = nullptr;  ///< [num_chunks][num_layers][head_dim + 4]: fp8 e4m3 key then
                                      ///< its fp32 scale, per layer; 16-byte aligned
  int64_t num_chunks = 0;             ///< chunks to score
  const float* d_q = nullptr;         ///< [num_layers][num_heads][head_dim], 16-byte aligned
  const float* d_weights = nullptr;   ///< [num_layers][num_heads]
};

/// Scores every chunk as LightningScorer::score does (sigmoid(logit + logit_offset), layers
/// ensembled by max or mean) into d_scores[num_chunks], and, when stats.d_kept is set, the page
/// statistics of threshold selection (fused into the scoring pass when page_chunks divides 128).
///
/// CUB-style workspace: with d_workspace null only `workspace_bytes` is set (nothing runs); then
/// call again with at least that many bytes of device memory (same config and math). No allocation,
/// no synchronization: everything is queued on `stream` (graph-capturable).
///
/// kInvalidValue: config not a valid lightning config (fp8 keys, one key head, num_heads <= 128),
/// misaligned or missing pointers, a workspace that is too small. kNotSupported: the math asked for
/// does not apply to these shapes, or its plan needs more shared memory than the current device
/// has (kTensorSplit/kTensorFast with 5-6 layers at H = 128 on sm_80); the workspace query already
/// says so.
[[nodiscard]] CudaError lightning_score(void* d_workspace, size_t& workspace_bytes,
                                        const ScorerConfig& config, const LightningInput& input,
                                        float* d_scores, const PageStats& stats,
                                        LightningMath math, Stream stream) noexcept;

/// The math that kAuto picks for `config` (the others are returned unchanged when they apply;
/// kNotSupported shapes give kCudaCore for kAuto only).
LightningMath resolve_lightning_math(const ScorerConfig& config, LightningMath math) noexcept;

}  // namespace lsa::cuda
