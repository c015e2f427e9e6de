// Device-side helpers shared by the CUDA backend's translation units (nvcc only).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "lsa/cuda/cuda_error.hpp"

namespace lsa::cuda::detail {

/// The CudaError carrying a cudaError_t.
inline CudaError to_error(cudaError_t e) noexcept {
  return static_cast<CudaError>(static_cast<int32_t>(e));
}

/// The error of the launches just made (and clears it, as cudaGetLastError does).
inline CudaError launch_error() noexcept { return to_error(cudaGetLastError()); }

/// Returns from the calling launcher when `expr` (a cudaError_t) is not cudaSuccess.
#define LSA_CUDA_TRY(expr)                                          \
  do {                                                              \
    const cudaError_t lsa_cuda_try_error_ = (expr);                 \
    if (lsa_cuda_try_error_ != cudaSuccess) {                       \
      return ::lsa::cuda::detail::to_error(lsa_cuda_try_error_);    \
    }                                                               \
  } while (0)

/// Returns the cudaError_t from the calling (cudaError_t-returning) helper when `expr` fails.
#define LSA_CUDA_TRY_RAW(expr)                                 \
  do {                                                         \
    const cudaError_t lsa_cuda_try_error_ = (expr);            \
    if (lsa_cuda_try_error_ != cudaSuccess) return lsa_cuda_try_error_; \
  } while (0)

/// Rounds a byte count up to the 256-byte alignment cudaMalloc gives.
constexpr size_t align_up(size_t bytes) noexcept { return (bytes + 255) / 256 * 256; }

/// Carves consecutive 256-byte aligned pieces out of a caller workspace (or, with a null base, only
/// adds up their sizes for the size query).
class WorkspaceCarver {
 public:
  explicit WorkspaceCarver(void* base) noexcept : base_(static_cast<std::byte*>(base)) {}

  /// The next piece of `count` elements of T (nullptr during a size query).
  template <class T>
  T* take(size_t count) noexcept {
    std::byte* at = base_ == nullptr ? nullptr : base_ + used_;
    used_ += align_up(count * sizeof(T));
    return reinterpret_cast<T*>(at);
  }

  /// Bytes taken so far.
  size_t used() const noexcept { return used_; }

 private:
  std::byte* base_;
  size_t used_ = 0;
};

/// True when p is aligned to `alignment` bytes.
inline bool aligned(const void* p, size_t alignment) noexcept {
  return reinterpret_cast<uintptr_t>(p) % alignment == 0;
}

/// Integer key with the order of detail::better on scores (lsa/detail/page_ranking.hpp rank_key):
/// ascending keys are descending scores, -0 ranks as +0.
__host__ __device__ __forceinline__ uint32_t rank_key(float score) {
#ifdef __CUDA_ARCH__
  uint32_t bits = __float_as_uint(score);
#else
  uint32_t bits;
  __builtin_memcpy(&bits, &score, 4);
#endif
  if ((bits << 1) == 0) bits = 0;
  return (bits & 0x80000000u) != 0 ? bits : (bits ^ 0x7FFFFFFFu);
}

/// Rank key of a page that must never be chosen (lsa::detail::kUnrankedKey).
inline constexpr uint32_t kUnrankedKey = 0xFFFFFFFFu;

/// Adds 1 to hist[digit] for every lane of the warp with `counted` set, one shared-memory atomic
/// per distinct digit: similar keys share few digit values, so plain atomics would serialize.
/// Every lane of the warp calls it.
__device__ __forceinline__ void warp_histogram_add(int32_t* hist, bool counted, uint32_t digit) {
  const unsigned counting = __ballot_sync(0xFFFFFFFFu, counted);
  if (counted) {
    const unsigned peers = __match_any_sync(counting, digit);
    if ((threadIdx.x % 32) == static_cast<unsigned>(__ffs(peers) - 1)) {
      atomicAdd(&hist[digit], __popc(peers));
    }
  }
}

/// Kept chunks of page `page` (chunk c is kept when kept(c)) and their scores summed in chunk order
/// in fp32, the host policy's arithmetic (detail::score_pages).
template <class Kept>
__device__ __forceinline__ void kept_page_stats(const float* scores, int64_t num_chunks, int64_t page,
                                                int32_t page_chunks, Kept kept, int32_t& count,
                                                float& sum) {
  const int64_t begin = page * page_chunks;
  const int64_t end = min(begin + page_chunks, num_chunks);
  count = 0;
  sum = 0.0f;
  for (int64_t c = begin; c < end; ++c) {
    const bool k = kept(c);
    count += k ? 1 : 0;
    sum += k ? scores[c] : 0.0f;
  }
}

/// Logistic function as the host computes it (full-precision expf and an IEEE division).
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/// Device properties the launchers need, read once per device.
struct DeviceInfo {
  int device = 0;
  int num_sms = 0;
  int max_smem_optin = 0;  ///< largest dynamic shared memory a block may opt into
  int cc_major = 0;
};

/// DeviceInfo of the current device (cached per device id).
cudaError_t current_device_info(DeviceInfo& info) noexcept;

}  // namespace lsa::cuda::detail
