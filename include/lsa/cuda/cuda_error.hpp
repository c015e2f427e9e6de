// What the CUDA backend's launchers return, and the stream they take, without CUDA headers.
#pragma once

#include <cstdint>

// cudaStream_t is `struct CUstream_st*`; naming the struct keeps this header free of CUDA headers.
struct CUstream_st;

namespace lsa::cuda {

/// A CUDA stream (the same type as cudaStream_t); nullptr is the legacy default stream.
using Stream = CUstream_st*;

/// A cudaError_t value carried without CUDA headers: `static_cast<cudaError_t>(e)` is the CUDA
/// error (kSuccess is cudaSuccess). Launchers return the first error of their own argument checks,
/// of the runtime calls they make, or of their launches; work already queued is not undone.
enum class [[nodiscard]] CudaError : int32_t {
  kSuccess = 0,         ///< cudaSuccess
  kInvalidValue = 1,    ///< cudaErrorInvalidValue: an argument breaks the rule its field documents
  kNotSupported = 801,  ///< cudaErrorNotSupported: a configuration this backend does not implement
};

/// True when `e` is kSuccess.
constexpr bool ok(CudaError e) noexcept { return e == CudaError::kSuccess; }

}  // namespace lsa::cuda
