// Reserve bytes of a CudaStore for the shared cache harness (tests/unit/support/cache_harness.hpp):
// read_slot / write_slot overloads that copy through the store's compute stream, synchronously.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "lsa/cuda/cuda_store.hpp"
#include "support/gpu.hpp"

namespace lsa::cuda {

/// Copies `bytes` bytes at `offset` of a device slot to host memory, after the queued compute work:
/// through an event on the compute stream, never a device-wide wait, so that the store's ordering
/// of its copy stream against the compute stream is what makes the bytes right.
inline void read_slot(const CudaStore& store, int32_t slot, int64_t offset, std::byte* dst,
                      int64_t bytes) {
  LSA_CUDA_REQUIRE(cudaMemcpyAsync(dst, store.slot_data(slot) + offset, static_cast<size_t>(bytes),
                                   cudaMemcpyDeviceToHost, store.compute_stream()));
  cudaEvent_t done = nullptr;
  LSA_CUDA_REQUIRE(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  LSA_CUDA_REQUIRE(cudaEventRecord(done, store.compute_stream()));
  LSA_CUDA_REQUIRE(cudaEventSynchronize(done));
  LSA_CUDA_REQUIRE(cudaEventDestroy(done));
}

/// Writes host bytes into a device slot on the compute stream, as an engine's KV-write kernel
/// would.
inline void write_slot(CudaStore& store, int32_t slot, int64_t offset, const std::byte* src,
                       int64_t bytes) {
  LSA_CUDA_REQUIRE(cudaMemcpyAsync(store.slot_data(slot) + offset, src, static_cast<size_t>(bytes),
                                   cudaMemcpyHostToDevice, store.compute_stream()));
  LSA_CUDA_REQUIRE(cudaStreamSynchronize(store.compute_stream()));
}

}  // namespace lsa::cuda
