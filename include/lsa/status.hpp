// Status codes returned by every per-step and lifecycle call.
#pragma once

#include <cstdint>
#include <string_view>

namespace lsa {

/// Outcome of a noexcept call. Anything but kOk means the cache is exactly as it was before.
enum class [[nodiscard]] Status : int32_t {
  kOk = 0,
  kInvalidArgument,    ///< a size, shape or pointer does not match the configuration
  kUnknownSequence,    ///< no live sequence has this id
  kDuplicateSequence,  ///< a sequence with this id already exists (or an id appears twice in a batch)
  kTooManySequences,   ///< max_sequences live sequences already
  kOutOfRange,         ///< a position or length outside [0, max_tokens]
  kNonFiniteInput,     ///< a query or key holds NaN or Inf
  kCapacityExceeded,   ///< the reserve cannot hold the pages this call must make resident
  kBufferTooSmall,     ///< a caller-owned view buffer is smaller than the view
  kIoError,            ///< reading or writing the file-backed mirror failed
  kOutOfMemory,        ///< growing host memory (mirror, index) failed
  kDeviceError,        ///< a CUDA call of a device store failed (cuda::CudaStore::cuda_error())
  kCorrupt,            ///< a page read back from the mirror differs from what was sealed (its
                       ///< digest does not match: the mirror file was changed behind the cache)
};

/// Short, stable name of a status ("ok", "unknown_sequence", ...).
constexpr std::string_view to_string(Status s) noexcept {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid_argument";
    case Status::kUnknownSequence: return "unknown_sequence";
    case Status::kDuplicateSequence: return "duplicate_sequence";
    case Status::kTooManySequences: return "too_many_sequences";
    case Status::kOutOfRange: return "out_of_range";
    case Status::kNonFiniteInput: return "non_finite_input";
    case Status::kCapacityExceeded: return "capacity_exceeded";
    case Status::kBufferTooSmall: return "buffer_too_small";
    case Status::kIoError: return "io_error";
    case Status::kOutOfMemory: return "out_of_memory";
    case Status::kDeviceError: return "device_error";
    case Status::kCorrupt: return "corrupt";
  }
  return "unknown_status";
}

/// True when `s` is kOk.
constexpr bool ok(Status s) noexcept { return s == Status::kOk; }

}  // namespace lsa
