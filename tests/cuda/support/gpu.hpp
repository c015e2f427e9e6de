// What every GPU test needs: the skip-without-device rule, error checks and device arrays.
#pragma once

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "lsa/cuda/cuda_error.hpp"

namespace lsa::cuda::testing {

/// What the one device check of this process found.
struct GpuProbe {
  bool present = false;  ///< a CUDA device is usable
  std::string absent;    ///< why there is none, when that is a reason to skip (else empty)
  std::string failure;   ///< a CUDA error that must fail every GPU test (else empty)
};

/// Checks once. Only "no device" skips: cudaErrorNoDevice, a count of 0, or no CUDA driver
/// installed at all (cudaDriverGetVersion reports 0, and the runtime then says
/// cudaErrorInsufficientDriver). Any other error, e.g. a driver too old for this runtime, fails.
inline const GpuProbe& probe() {
  static const GpuProbe result = [] {
    GpuProbe p;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) {
      p.present = true;
      return p;
    }
    (void)cudaGetLastError();
    int driver = -1;
    int runtime = -1;
    const bool no_driver = cudaDriverGetVersion(&driver) == cudaSuccess && driver == 0;
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaGetLastError();
    if (e == cudaSuccess || e == cudaErrorNoDevice) {
      p.absent = "no CUDA device";
    } else if (no_driver) {
      p.absent = "no CUDA driver installed";
    } else {
      p.failure = std::string("cudaGetDeviceCount failed with ") + cudaGetErrorName(e) + " (" +
                  cudaGetErrorString(e) + "); driver version " + std::to_string(driver) +
                  ", runtime version " + std::to_string(runtime);
    }
    return p;
  }();
  return result;
}

/// True when a CUDA device is usable.
inline bool has_device() { return probe().present; }

/// True when the environment says that every GPU test must run (LSA_REQUIRE_GPU=1).
inline bool gpu_required() {
  const char* v = std::getenv("LSA_REQUIRE_GPU");
  return v != nullptr && std::string(v) == "1";
}

/// Name and compute capability of device 0, for test output.
inline std::string device_name() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "?";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

}  // namespace lsa::cuda::testing

/// First statement of every GPU test. A CUDA error other than "no device" fails the test, naming
/// it. Without a device the test prints the skip marker and returns, and ctest reports it skipped
/// (SKIP_REGULAR_EXPRESSION, cmake/catch_tests.cmake), not passed; with LSA_REQUIRE_GPU=1 it fails.
#define LSA_REQUIRE_GPU()                                                                       \
  do {                                                                                          \
    const ::lsa::cuda::testing::GpuProbe& lsa_gpu_probe_ = ::lsa::cuda::testing::probe();       \
    if (!lsa_gpu_probe_.failure.empty()) FAIL(lsa_gpu_probe_.failure);                         \
    if (!lsa_gpu_probe_.present) {                                                              \
      if (::lsa::cuda::testing::gpu_required()) {                                               \
        FAIL("LSA_REQUIRE_GPU=1 but this GPU test cannot run: " << lsa_gpu_probe_.absent);     \
      }                                                                                         \
      WARN("LSA_TEST_SKIPPED: " << lsa_gpu_probe_.absent                                        \
                                << " (this GPU test runs on machines with a GPU)");             \
      return;                                                                                   \
    }                                                                                           \
  } while (0)

/// REQUIREs a cudaError_t to be cudaSuccess, naming the error otherwise.
#define LSA_CUDA_REQUIRE(expr)                                                   \
  do {                                                                           \
    const cudaError_t lsa_test_error_ = (expr);                                  \
    INFO(#expr << ": " << cudaGetErrorString(lsa_test_error_));                  \
    REQUIRE(lsa_test_error_ == cudaSuccess);                                     \
  } while (0)

/// REQUIREs an lsa::cuda::CudaError to be kSuccess.
#define LSA_CUDA_OK(expr)                                                                   \
  do {                                                                                      \
    const ::lsa::cuda::CudaError lsa_test_error_ = (expr);                                  \
    INFO(#expr << ": " << cudaGetErrorString(static_cast<cudaError_t>(lsa_test_error_)));   \
    REQUIRE(lsa_test_error_ == ::lsa::cuda::CudaError::kSuccess);                           \
  } while (0)

namespace lsa::cuda::testing {

/// A device array owned by the test (cudaMalloc / cudaFree); copies in and out synchronously.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) { resize(n); }
  explicit DeviceArray(const std::vector<T>& host) { upload(host); }
  ~DeviceArray() { reset(); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  /// Reallocates to n elements (contents undefined).
  void resize(size_t n) {
    reset();
    size_ = n;
    LSA_CUDA_REQUIRE(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(T)));
  }
  /// Replaces the contents with `host`.
  void upload(const std::vector<T>& host) {
    if (host.size() != size_ || data_ == nullptr) resize(host.size());
    if (!host.empty()) {
      LSA_CUDA_REQUIRE(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  /// Every byte set to `byte` (poison before a kernel that must write everything).
  void fill_bytes(int byte) { LSA_CUDA_REQUIRE(cudaMemset(data_, byte, std::max<size_t>(size_, 1) * sizeof(T))); }
  /// The contents, read on `stream` after the work queued there: the test waits for an event on
  /// that stream only, never for the whole device, so a missing stream dependency shows.
  std::vector<T> download(cudaStream_t stream) const {
    std::vector<T> host(size_);
    if (size_ > 0) {
      LSA_CUDA_REQUIRE(
          cudaMemcpyAsync(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost, stream));
    }
    cudaEvent_t done = nullptr;
    LSA_CUDA_REQUIRE(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    LSA_CUDA_REQUIRE(cudaEventRecord(done, stream));
    LSA_CUDA_REQUIRE(cudaEventSynchronize(done));
    LSA_CUDA_REQUIRE(cudaEventDestroy(done));
    return host;
  }
  /// The contents, after everything the device has queued (cudaDeviceSynchronize).
  std::vector<T> download() const {
    std::vector<T> host(size_);
    LSA_CUDA_REQUIRE(cudaDeviceSynchronize());
    if (size_ > 0) {
      LSA_CUDA_REQUIRE(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return host;
  }
  T* get() const { return data_; }
  size_t size() const { return size_; }

 private:
  void reset() {
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lsa::cuda::testing
