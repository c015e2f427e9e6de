// Helpers shared by the lsa benchmarks: per-item wall-clock counters and a bandwidth floor.
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

namespace lsa::bench {

/// Wall clock around a whole `for (auto _ : state)` loop; turns it into per-item counters.
class LoopTimer {
 public:
  /// Starts the clock (call right before the benchmark loop).
  LoopTimer() : start_(std::chrono::steady_clock::now()) {}

  /// Nanoseconds per item over the loop just finished, `items_per_iteration` items each.
  double ns_per_item(const benchmark::State& state, double items_per_iteration) const {
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start_).count();
    const double items = static_cast<double>(state.iterations()) * items_per_iteration;
    return items > 0 ? ns / items : 0.0;
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

/// 64-byte aligned byte buffer, touched once so that its pages are mapped before timing.
struct AlignedBytes {
  struct Delete {
    void operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<std::byte[], Delete> data;
  size_t size = 0;

  explicit AlignedBytes(size_t n) : data(new (std::align_val_t{64}) std::byte[n]), size(n) {
    std::memset(data.get(), 1, n);
  }
  std::byte* get() const noexcept { return data.get(); }
};

/// Reads `n` bytes (n a multiple of 64) as 64-bit words and returns their xor: a pure read stream.
inline uint64_t read_stream(const std::byte* p, size_t n) noexcept {
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  for (size_t i = 0; i < n / 8; i += 8) {
    a0 ^= w[i + 0];
    a1 ^= w[i + 1];
    a2 ^= w[i + 2];
    a3 ^= w[i + 3];
    a4 ^= w[i + 4];
    a5 ^= w[i + 5];
    a6 ^= w[i + 6];
    a7 ^= w[i + 7];
  }
  return a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

}  // namespace lsa::bench
