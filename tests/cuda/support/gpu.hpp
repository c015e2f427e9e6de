// What every GPU test needs: the skip-without-device rule, error checks and device arrays.
#pragma once

#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lsa/cuda/cuda_error.hpp"

namespace lsa::cuda::testing {

/// True when a CUDA device is usable (checked once).
inline bool has_device() {
  static const bool present = [] {
    int n = 0;
    const bool found = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    if (!found) (void)cudaGetLastError();
    return found;
  }();
  return present;
}

/// Name and compute capability of device 0, for test output.
inline std::string device_name() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "?";
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

}  // namespace lsa::cuda::testing

/// First statement of every GPU test: without a device, print the skip marker and return; ctest
/// reports the test as skipped (SKIP_REGULAR_EXPRESSION, cmake/catch_tests.cmake), not passed.
#define LSA_REQUIRE_GPU()                                                                   \
  do {                                                                                      \
    if (!::lsa::cuda::testing::has_device()) {                                              \
      WARN("LSA_TEST_SKIPPED: no CUDA device (this GPU test runs on machines with a GPU)"); \
      return;                                                                               \
    }                                                                                       \
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
  /// The contents.
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
