// DeviceLightningScorer: per-sequence device rows (copy on write), scoring with lightning_score.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <string>

#include "detail/common.cuh"
#include "detail/device_guard.cuh"
#include "lsa/cuda/device_lightning_scorer.hpp"
#include "lsa/detail/key_decode.hpp"
#include "lsa/detail/scorer_checks.hpp"
#include "lsa/error.hpp"

namespace lsa::cuda {
namespace detail {

/// One sequence's rows: `capacity` rows of device memory from the scorer's stream-ordered pool.
struct DeviceRowBuffer {
  std::byte* data = nullptr;
  int64_t capacity = 0;  // rows
  cudaStream_t stream = nullptr;
  ~DeviceRowBuffer() {
    if (data != nullptr) (void)cudaFreeAsync(data, stream);
  }
};

/// What score() and append() use: the stream, and buffers that grow by doubling.
struct DeviceScorerState {
  cudaStream_t stream = nullptr;
  int device = 0;
  float* d_q = nullptr;        // [num_layers][num_heads][head_dim]
  float* d_weights = nullptr;  // [num_layers][num_heads]
  float* d_scores = nullptr;
  int64_t scores_capacity = 0;
  void* d_workspace = nullptr;
  size_t workspace_bytes = 0;
  int error = cudaSuccess;  // the first CUDA error met

  bool note(cudaError_t e) {
    if (e == cudaSuccess) return true;
    if (error == cudaSuccess) error = e;
    (void)cudaGetLastError();
    return false;
  }
  ~DeviceScorerState() {
    if (stream != nullptr) (void)cudaStreamSynchronize(stream);
    (void)cudaFree(d_q);
    (void)cudaFree(d_weights);
    (void)cudaFree(d_workspace);
    if (d_scores != nullptr) (void)cudaFreeAsync(d_scores, stream);
    if (stream != nullptr) {
      (void)cudaStreamSynchronize(stream);
      (void)cudaStreamDestroy(stream);
    }
  }
};

}  // namespace detail

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(std::string("DeviceLightningScorer: ") + what +
                " failed: " + cudaGetErrorString(e));
  }
}

}  // namespace

DeviceLightningScorer::DeviceLightningScorer(const ScorerConfig& config, int32_t chunk_tokens,
                                             LightningMath math)
    : config_(config), chunk_tokens_(chunk_tokens), math_(math) {
  constexpr const char* kName = "cuda lightning";
  lsa::detail::check_common_config(config, chunk_tokens, kName);
  lsa::detail::require(config.key_format == KeyFormat::kFp8E4M3, "scorer.key_format",
                       "be kFp8E4M3 (2)", kName, static_cast<int>(config.key_format));
  lsa::detail::require(config.num_key_heads == 1, "scorer.num_key_heads",
                       "be 1 (one key shared by all heads)", kName, config.num_key_heads);
  lsa::detail::require(config.num_heads <= 128, "scorer.num_heads", "be <= 128", kName,
                       config.num_heads);
  lsa::detail::require(config.head_dim % 4 == 0 && config.head_dim <= 1024, "scorer.head_dim",
                       "be a multiple of 4 up to 1024", kName, config.head_dim);
  lsa::detail::require(std::isfinite(config.logit_offset), "scorer.logit_offset", "be finite",
                       kName, config.logit_offset);
  row_bytes_ =
      lsa::detail::key_vector_bytes(config.key_format, config.head_dim) * config.num_layers;
  state_ = std::make_unique<detail::DeviceScorerState>();
  detail::DeviceScorerState& s = *state_;
  check(cudaGetDevice(&s.device), "cudaGetDevice");
  check(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking), "stream creation");
  const size_t heads = size_t{static_cast<uint32_t>(config.num_layers)} * config.num_heads;
  check(cudaMalloc(&s.d_q, heads * config.head_dim * sizeof(float)), "cudaMalloc of the query");
  check(cudaMalloc(&s.d_weights, heads * sizeof(float)), "cudaMalloc of the head weights");
  const CudaError query = lightning_score(nullptr, s.workspace_bytes, config, LightningInput{},
                                          nullptr, PageStats{}, math, s.stream);
  if (query == CudaError::kNotSupported) {
    throw Error(
        "DeviceLightningScorer: the LightningMath asked for does not apply to these shapes, or "
        "needs more shared memory than this device has (use LightningMath::kAuto)");
  }
  check(static_cast<cudaError_t>(query), "lightning_score workspace query");
  check(cudaMalloc(&s.d_workspace, s.workspace_bytes), "cudaMalloc of the workspace");
}

DeviceLightningScorer::~DeviceLightningScorer() = default;

CudaError DeviceLightningScorer::cuda_error() const noexcept {
  return static_cast<CudaError>(state_->error);
}

Status DeviceLightningScorer::check_keys(KeyRows rows) const noexcept {
  return lsa::detail::check_key_rows(rows, config_.key_format, config_.num_layers,
                                     config_.head_dim);
}

Status DeviceLightningScorer::check_query(Query query) const noexcept {
  const int64_t heads = int64_t{config_.num_layers} * config_.num_heads;
  if (static_cast<int64_t>(query.q.size()) != heads * config_.head_dim ||
      static_cast<int64_t>(query.weights.size()) != heads) {
    return Status::kInvalidArgument;
  }
  return lsa::detail::all_finite(query.q) && lsa::detail::all_finite(query.weights)
             ? Status::kOk
             : Status::kNonFiniteInput;
}

void DeviceLightningScorer::append(Index& index, KeyRows rows) const {
  if (rows.num_rows <= 0) return;
  detail::DeviceScorerState& s = *state_;
  const detail::DeviceGuard guard(s.device);
  const int64_t needed = index.num_rows + rows.num_rows;
  const bool shared = index.buffer != nullptr && index.buffer.use_count() > 1;
  std::shared_ptr<detail::DeviceRowBuffer> target = index.buffer;
  if (target == nullptr || shared || target->capacity < needed) {
    // A new buffer (doubling), holding a copy of the rows this index keeps.
    const int64_t capacity =
        std::max<int64_t>({needed, 64, target == nullptr ? 0 : 2 * target->capacity});
    auto fresh = std::make_shared<detail::DeviceRowBuffer>();
    fresh->stream = s.stream;
    void* memory = nullptr;
    if (cudaMallocAsync(&memory, static_cast<size_t>(capacity * row_bytes_), s.stream) !=
        cudaSuccess) {
      (void)cudaGetLastError();
      throw std::bad_alloc();
    }
    fresh->data = static_cast<std::byte*>(memory);
    fresh->capacity = capacity;
    if (index.num_rows > 0 &&
        !s.note(cudaMemcpyAsync(fresh->data, index.buffer->data,
                                static_cast<size_t>(index.num_rows * row_bytes_),
                                cudaMemcpyDeviceToDevice, s.stream))) {
      throw std::bad_alloc();  // the index still points at its old rows
    }
    target = std::move(fresh);
  }
  // From pageable memory the copy returns once the rows are staged; from pinned or registered
  // memory it is truly asynchronous, so the call waits for it: either way the caller may reuse
  // its rows when append returns.
  cudaPointerAttributes source{};
  if (!s.note(cudaPointerGetAttributes(&source, rows.data)) ||
      !s.note(cudaMemcpyAsync(target->data + index.num_rows * row_bytes_, rows.data,
                              static_cast<size_t>(rows.num_rows * row_bytes_),
                              cudaMemcpyHostToDevice, s.stream)) ||
      (source.type != cudaMemoryTypeUnregistered && !s.note(cudaStreamSynchronize(s.stream)))) {
    throw std::bad_alloc();
  }
  index.buffer = std::move(target);
  index.num_rows = needed;
}

void DeviceLightningScorer::truncate(Index& index, int64_t num_tokens) const noexcept {
  // Rows below the new count never change, so a buffer shared with a fork stays valid for both.
  index.num_rows = std::clamp<int64_t>(num_tokens / chunk_tokens_, 0, index.num_rows);
}

void DeviceLightningScorer::score(const Index& index, Query query,
                                  std::span<float> out) const noexcept {
  detail::DeviceScorerState& s = *state_;
  const int64_t n = index.num_rows;
  if (n == 0) return;
  const detail::DeviceGuard guard(s.device);
  bool ok = true;
  if (s.scores_capacity < n) {
    const int64_t capacity = std::max<int64_t>(n, 2 * s.scores_capacity);
    void* memory = nullptr;
    ok = s.note(cudaMallocAsync(&memory, static_cast<size_t>(capacity) * sizeof(float), s.stream));
    if (ok) {
      if (s.d_scores != nullptr) (void)cudaFreeAsync(s.d_scores, s.stream);
      s.d_scores = static_cast<float*>(memory);
      s.scores_capacity = capacity;
    }
  }
  ok = ok && s.note(cudaMemcpyAsync(s.d_q, query.q.data(), query.q.size_bytes(),
                                    cudaMemcpyHostToDevice, s.stream));
  ok = ok && s.note(cudaMemcpyAsync(s.d_weights, query.weights.data(), query.weights.size_bytes(),
                                    cudaMemcpyHostToDevice, s.stream));
  if (ok) {
    const LightningInput input{index.buffer->data, n, s.d_q, s.d_weights};
    size_t bytes = s.workspace_bytes;
    ok = s.note(static_cast<cudaError_t>(lightning_score(
        s.d_workspace, bytes, config_, input, s.d_scores, PageStats{}, math_, s.stream)));
  }
  ok = ok && s.note(cudaMemcpyAsync(out.data(), s.d_scores, static_cast<size_t>(n) * sizeof(float),
                                    cudaMemcpyDeviceToHost, s.stream));
  ok = ok && s.note(cudaStreamSynchronize(s.stream));
  if (!ok) std::fill(out.begin(), out.begin() + n, std::numeric_limits<float>::quiet_NaN());
}

}  // namespace lsa::cuda
