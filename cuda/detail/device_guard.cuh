// Makes a device current for a scope and restores the caller's (nvcc only).
#pragma once

#include <cuda_runtime.h>

namespace lsa::cuda::detail {

/// Sets `device` current while it lives when it is not already; restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) noexcept {
    if (cudaGetDevice(&previous_) != cudaSuccess) (void)cudaGetLastError();
    if (previous_ != device && cudaSetDevice(device) == cudaSuccess) changed_ = true;
    if (!changed_ && previous_ != device) (void)cudaGetLastError();  // the calls that follow fail
  }
  ~DeviceGuard() {
    if (changed_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

}  // namespace lsa::cuda::detail
