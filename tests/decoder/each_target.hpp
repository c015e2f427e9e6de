// Runs a test body once per SIMD target this CPU and binary support (ops/targets.hpp), so an
// AVX-512 machine also tests the AVX2 and scalar kernels, and restores the best target after.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "ops/targets.hpp"

namespace lsa_decode_test {

/// Calls body(target_name) with the kernels pinned to each available target in turn.
template <class Body>
void for_each_target(Body&& body) {
  struct Restore {
    ~Restore() { lsa_decode::use_best_target(); }
  } restore;
  const auto targets = lsa_decode::available_targets();
  REQUIRE(!targets.empty());
  for (const lsa_decode::SimdTarget& t : targets) {
    lsa_decode::use_target(t);
    REQUIRE(lsa_decode::active_target() == t.name);
    INFO("target " << t.name);
    body(t.name);
  }
}

}  // namespace lsa_decode_test
