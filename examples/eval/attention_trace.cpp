#include "attention_trace.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "error.hpp"

namespace lsa_decode {

AttentionTrace::AttentionTrace(int64_t first_position, int64_t page_tokens)
    : first_position_(first_position), page_tokens_(page_tokens) {
  if (first_position < 0 || page_tokens < 1) {
    throw DecodeError(fmt::format("attention trace: first position {} and page tokens {} must be "
                                  ">= 0 and >= 1",
                                  first_position, page_tokens));
  }
}

void AttentionTrace::add_step(const AttentionMass& mass, std::span<const int32_t> pages) {
  const int64_t position = first_position_ + num_steps();
  const int64_t want = (position + page_tokens_ - 1) / page_tokens_;
  bool dense = static_cast<int64_t>(pages.size()) == want && mass.num_pages == want;
  for (size_t i = 0; dense && i < pages.size(); ++i) dense = pages[i] == static_cast<int32_t>(i);
  if (!dense || mass.pages.size() != static_cast<size_t>(mass.num_layers) * pages.size() ||
      mass.self.size() != static_cast<size_t>(mass.num_layers)) {
    throw DecodeError(fmt::format(
        "attention trace: step {} must record the {} pages of a dense view (got {} pages)",
        num_steps(), want, pages.size()));
  }
  steps_.push_back(mass);
}

void AttentionTrace::add_page_mass(int64_t step, int32_t horizon, std::span<float> out) const {
  if (steps_.empty()) return;
  int64_t begin = std::min(step, num_steps() - 1);
  const int64_t end = std::min(std::max(step + horizon, begin + 1), num_steps());
  for (int64_t s = begin; s < end; ++s) {
    const AttentionMass& m = steps_[static_cast<size_t>(s)];
    const int64_t own_page = (first_position_ + s) / page_tokens_;
    const auto n = std::min<int64_t>(m.num_pages, static_cast<int64_t>(out.size()));
    for (int32_t l = 0; l < m.num_layers; ++l) {
      for (int64_t p = 0; p < n; ++p) out[static_cast<size_t>(p)] += m.page(l, static_cast<int32_t>(p));
      if (own_page < static_cast<int64_t>(out.size())) {
        out[static_cast<size_t>(own_page)] += m.self[static_cast<size_t>(l)];
      }
    }
  }
}

void AttentionTrace::coverage(int64_t step, std::span<const int32_t> pages,
                              std::vector<float>& out) const {
  if (step < 0 || step >= num_steps()) {
    throw DecodeError(fmt::format("attention trace: step {} was not recorded ({} steps)", step,
                                  num_steps()));
  }
  const AttentionMass& m = steps_[static_cast<size_t>(step)];
  for (int32_t l = 0; l < m.num_layers; ++l) {
    double total = m.self[static_cast<size_t>(l)], covered = total;
    for (int32_t p = 0; p < m.num_pages; ++p) total += m.page(l, p);
    for (const int32_t p : pages) {
      if (p >= 0 && p < m.num_pages) covered += m.page(l, p);
    }
    out.push_back(total > 0.0 ? static_cast<float>(covered / total) : 1.0f);
  }
}

}  // namespace lsa_decode
