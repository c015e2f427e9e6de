// Portable pseudo-random draws (splitmix64): the same numbers on every platform and standard
// library, which std's distributions do not promise. The eval tasks, the indexer's training
// documents and the random baseline scorer draw from it.
#pragma once

#include <cstdint>

namespace lsa_decode {

/// splitmix64 finalizer: a well-mixed 64-bit function of x.
constexpr uint64_t mix64(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// A splitmix64 stream.
class Draws {
 public:
  explicit Draws(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9E3779B97F4A7C15ull); }
  /// Uniform in [0, n) (the modulo bias of a 64-bit draw is negligible here).
  uint64_t below(uint64_t n) { return next() % n; }
  /// Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace lsa_decode
