// How many rows of a DeviceBatchTable a kernel serves (nvcc only).
#pragma once

#include <cstdint>

#include "lsa/cuda/view_builder.hpp"

namespace lsa::cuda::detail {

/// The rows of this step: *d_num_batch when the table has it (read on the device, so a graph
/// captured for num_batch rows follows a smaller batch), never more than num_batch.
__device__ __forceinline__ int32_t batch_rows(const DeviceBatchTable& t) {
  if (t.d_num_batch == nullptr) return t.num_batch;
  return min(max(*t.d_num_batch, 0), t.num_batch);
}

}  // namespace lsa::cuda::detail
