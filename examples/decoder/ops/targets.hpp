// Which SIMD target the decoder's kernels run on. Highway compiles every kernel for AVX-512
// ("AVX3"), AVX2 (with FMA and F16C) and a portable scalar path, and picks the best one the CPU
// supports at the first call; tests and measurements can pin another.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lsa_decode {

/// A kernel target: Highway's bit for it and its name ("AVX3", "AVX2", "SCALAR").
struct SimdTarget {
  int64_t bits = 0;
  std::string name;
};

/// The targets this binary has kernels for that the CPU can run, best first.
std::vector<SimdTarget> available_targets();

/// Name of the target the kernels use now.
std::string active_target();

/// Pins the kernels to `target` (one of available_targets()); throws DecodeError otherwise.
/// Not thread-safe: call it while no kernel runs.
void use_target(const SimdTarget& target);

/// Undoes use_target: the best available target again.
void use_best_target();

/// Pins the target named by the environment variable LSA_DECODE_TARGET when it is set (a name
/// from available_targets(), any case, or "AVX512" for AVX3); throws DecodeError naming the value
/// and the choices when the CPU or the binary lacks it.
void use_target_from_env();

}  // namespace lsa_decode
