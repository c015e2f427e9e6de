// Target selection through Highway's own mask of supported targets, which every
// HWY_DYNAMIC_DISPATCH call in the decoder consults.
#include "ops/targets.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/targets.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// After foreach_target.h, which includes this file again once per target:
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace lsa_decode {
namespace HWY_NAMESPACE {

int64_t compiled_target() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace lsa_decode
HWY_AFTER_NAMESPACE();

#if HWY_ONCE

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "error.hpp"

namespace lsa_decode {

HWY_EXPORT(compiled_target);

namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// What the CPU supports, read once before any target is pinned (pinning changes what
// hwy::SupportedTargets reports).
const std::vector<SimdTarget>& cpu_targets() {
  static const std::vector<SimdTarget> targets = [] {
    std::vector<SimdTarget> out;
    for (const int64_t bits : hwy::SupportedAndGeneratedTargets()) {
      out.push_back({bits, hwy::TargetName(bits)});
    }
    return out;  // Highway's bits order better targets first
  }();
  return targets;
}

}  // namespace

std::vector<SimdTarget> available_targets() { return cpu_targets(); }

std::string active_target() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(compiled_target)()); }

void use_target(const SimdTarget& target) {
  const auto& all = cpu_targets();
  if (std::none_of(all.begin(), all.end(),
                   [&](const SimdTarget& t) { return t.bits == target.bits; })) {
    throw DecodeError(fmt::format("kernel target '{}' is not available on this CPU", target.name));
  }
  hwy::SetSupportedTargetsForTest(target.bits);
}

void use_best_target() {
  (void)cpu_targets();
  hwy::SetSupportedTargetsForTest(0);
}

void use_target_from_env() {
  const char* value = std::getenv("LSA_DECODE_TARGET");
  if (value == nullptr || *value == '\0') return;
  std::string want = upper(value);
  if (want == "AVX512") want = "AVX3";
  std::string names;
  for (const SimdTarget& t : cpu_targets()) {
    if (t.name == want) return use_target(t);
    names += (names.empty() ? "" : ", ") + t.name;
  }
  throw DecodeError(
      fmt::format("LSA_DECODE_TARGET={}: this CPU and binary offer {}", value, names));
}

}  // namespace lsa_decode

#endif  // HWY_ONCE
