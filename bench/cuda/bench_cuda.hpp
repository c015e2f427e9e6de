// What every GPU benchmark needs: exit-on-error checks, the device probe, the HBM bandwidth.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>

/// Prints the failing call and exits: a benchmark that lost its device has nothing left to measure.
#define BENCH_CUDA(expr)                                                 \
  do {                                                                   \
    const cudaError_t bench_error_ = static_cast<cudaError_t>(expr);     \
    if (bench_error_ != cudaSuccess) {                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, \
                   cudaGetErrorString(bench_error_));                    \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

namespace lsa::bench {

/// True when a CUDA device is usable.
inline bool has_device() {
  int n = 0;
  const bool found = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  if (!found) (void)cudaGetLastError();
  return found;
}

/// Bytes per second of a 1 GiB device-to-device copy, counting bytes read plus bytes written
/// (measured once; prints the device and the figure).
inline double copy_bandwidth() {
  static const double bandwidth = [] {
    const size_t bytes = size_t{1} << 30;
    void* a = nullptr;
    void* b = nullptr;
    BENCH_CUDA(cudaMalloc(&a, bytes));
    BENCH_CUDA(cudaMalloc(&b, bytes));
    BENCH_CUDA(cudaMemset(a, 1, bytes));
    cudaEvent_t start, stop;
    BENCH_CUDA(cudaEventCreate(&start));
    BENCH_CUDA(cudaEventCreate(&stop));
    for (int i = 0; i < 3; ++i) BENCH_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    const int reps = 10;
    BENCH_CUDA(cudaEventRecord(start));
    for (int i = 0; i < reps; ++i)
      BENCH_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    BENCH_CUDA(cudaEventRecord(stop));
    BENCH_CUDA(cudaEventSynchronize(stop));
    float ms = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&ms, start, stop));
    BENCH_CUDA(cudaFree(a));
    BENCH_CUDA(cudaFree(b));
    BENCH_CUDA(cudaEventDestroy(start));
    BENCH_CUDA(cudaEventDestroy(stop));
    const double bw = 2.0 * static_cast<double>(bytes) * reps / (ms * 1e-3);
    cudaDeviceProp prop{};
    BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s, %d SMs; D2D copy: %.0f GB/s (read + write)\n", prop.name,
                prop.multiProcessorCount, bw / 1e9);
    return bw;
  }();
  return bandwidth;
}

/// Device time of work queued on one stream, between two events.
class DeviceTimer {
 public:
  /// A timer for work on `stream`.
  explicit DeviceTimer(cudaStream_t stream) : stream_(stream) {
    BENCH_CUDA(cudaEventCreate(&start_));
    BENCH_CUDA(cudaEventCreate(&stop_));
  }
  ~DeviceTimer() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;

  /// Seconds per call of `calls` back-to-back calls of `launch` (which queues work on the stream).
  template <class Launch>
  double seconds_per_call(int calls, Launch&& launch) {
    BENCH_CUDA(cudaEventRecord(start_, stream_));
    for (int i = 0; i < calls; ++i) launch();
    BENCH_CUDA(cudaEventRecord(stop_, stream_));
    BENCH_CUDA(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    BENCH_CUDA(cudaEventElapsedTime(&ms, start_, stop_));
    return ms * 1e-3 / calls;
  }

 private:
  cudaStream_t stream_;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
};

}  // namespace lsa::bench
