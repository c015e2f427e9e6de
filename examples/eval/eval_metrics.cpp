#include "eval_metrics.hpp"

#include <algorithm>
#include <cmath>

namespace lsa_decode {

void log_softmax(std::span<const float> logits, std::vector<float>& out) {
  out.resize(logits.size());
  if (logits.empty()) return;
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (const float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  const double log_z = static_cast<double>(mx) + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(logits[i]) - log_z);
  }
}

double kl_divergence(std::span<const float> log_p, std::span<const float> log_q) {
  double kl = 0.0;
  const size_t n = std::min(log_p.size(), log_q.size());
  for (size_t i = 0; i < n; ++i) {
    const double lp = log_p[i];
    if (lp < -80.0) continue;  // p < 2e-35: no measurable contribution (and exp underflows)
    kl += std::exp(lp) * (lp - static_cast<double>(log_q[i]));
  }
  return std::max(kl, 0.0);  // rounding can leave -1e-12 for identical distributions
}

int32_t argmax(std::span<const float> values) {
  return static_cast<int32_t>(std::max_element(values.begin(), values.end()) - values.begin());
}

std::string first_digits(std::string_view text) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto begin = std::find_if(text.begin(), text.end(), digit);
  const auto end = std::find_if_not(begin, text.end(), digit);
  return std::string(begin, end);
}

}  // namespace lsa_decode
