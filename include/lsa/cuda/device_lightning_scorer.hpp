// The lightning indexer as an IndexScorer whose key rows live on the device and are scored there.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/lightning.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa::cuda {

namespace detail {
struct DeviceRowBuffer;  // device memory of one sequence's rows (cuda/device_lightning_scorer.cu)
struct DeviceScorerState;
}  // namespace detail

/// LightningScorer's scores, computed by lightning_score on the device: drop-in for SparseKVCache's
/// scorer slot (`SparseKVCache<Chunker, cuda::DeviceLightningScorer, LookaheadPolicy,
/// cuda::CudaStore>`), so a refresh costs a kernel and a copy of the scores instead of a pass over
/// every key on one core. Keys are fp8 e4m3 rows as LightningScorer takes them (checked on the
/// host at append, then copied to the device once).
///
/// Per sequence the rows live in one device buffer that grows by doubling with stream-ordered
/// allocations (cudaMallocAsync on the scorer's stream, so growth never synchronizes the device);
/// forks share it until one of them appends (copy on write). score() queues the query, the kernel
/// and the copy of the scores, then waits for its own stream: a refresh step waits for its scores,
/// no other step touches the device. Uses the current device at construction.
class DeviceLightningScorer {
 public:
  /// A sequence's rows on the device; copies share them.
  struct Index {
    std::shared_ptr<detail::DeviceRowBuffer> buffer;  ///< null until the first row
    int64_t num_rows = 0;                             ///< chunks with a row
  };
  /// Rows are given per completed chunk.
  static constexpr KeyGranularity kGranularity = KeyGranularity::kChunk;
  /// Scores are sigmoid outputs.
  static constexpr bool kProbabilities = true;

  /// Throws lsa::Error naming the field when the shapes do not fit the device kernel (fp8 keys,
  /// one key head, num_heads <= 128, head_dim a multiple of 4 up to 1024) or a CUDA call fails.
  DeviceLightningScorer(const ScorerConfig& config, int32_t chunk_tokens,
                        LightningMath math = LightningMath::kAuto);
  ~DeviceLightningScorer();
  DeviceLightningScorer(const DeviceLightningScorer&) = delete;
  DeviceLightningScorer& operator=(const DeviceLightningScorer&) = delete;

  /// The configuration this scorer was built with.
  const ScorerConfig& config() const noexcept { return config_; }
  /// Bytes of one chunk row: num_layers fp8 key vectors with their scales.
  int64_t row_bytes() const noexcept { return row_bytes_; }
  /// The first CUDA error met by a call that returns void (kSuccess when none); scores of a
  /// refresh that failed are NaN, which no selection keeps.
  CudaError cuda_error() const noexcept;

  /// kNonFiniteInput on a NaN/Inf scale or a NaN fp8 code; kInvalidArgument on a bad count.
  Status check_keys(KeyRows rows) const noexcept;
  /// q must be [num_layers][num_heads][head_dim] and weights [num_layers][num_heads], all finite.
  Status check_query(Query query) const noexcept;
  /// Copies checked host rows to the device; the rows may be reused when it returns (from pinned
  /// or registered memory it waits for the copy). Throws std::bad_alloc (index unchanged) when
  /// device memory runs out or a CUDA call fails (cuda_error() says which).
  void append(Index& index, KeyRows rows) const;
  /// Keeps the floor(num_tokens / chunk_tokens) chunks that are still complete.
  void truncate(Index& index, int64_t num_tokens) const noexcept;
  /// Chunks with a row.
  int64_t num_chunks(const Index& index) const noexcept { return index.num_rows; }
  /// Writes num_chunks(index) scores to out (host memory); the query has passed check_query.
  void score(const Index& index, Query query, std::span<float> out) const noexcept;

 private:
  ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t row_bytes_;
  LightningMath math_;
  std::unique_ptr<detail::DeviceScorerState> state_;  // stream, query and score buffers, workspace
};

static_assert(IndexScorer<DeviceLightningScorer>);

}  // namespace lsa::cuda
