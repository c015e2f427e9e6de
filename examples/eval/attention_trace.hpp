// The attention of a reference (dense) run, step by step, and what it says about other runs of the
// same tokens: the oracle's future page mass, and how much of it a method's pages cover.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model.hpp"
#include "oracle_scorer.hpp"

namespace lsa_decode {

/// Per decode step of a dense session: the attention mass of every layer on every page and on the
/// token itself. Step k decodes the token at position first_position + k.
class AttentionTrace final : public FutureAttention {
 public:
  /// `first_position`: the position decoded at step 0 (the prefix length); `page_tokens`: tokens
  /// per page of the sessions compared with it.
  AttentionTrace(int64_t first_position, int64_t page_tokens);

  /// Appends the next step: `mass` over `pages`, which must be every page of the history in
  /// order (a dense view); throws DecodeError otherwise.
  void add_step(const AttentionMass& mass, std::span<const int32_t> pages);

  /// Steps recorded.
  int64_t num_steps() const { return static_cast<int64_t>(steps_.size()); }

  /// out[p] += mass on page p summed over layers, heads and the recorded steps in
  /// [step, step + horizon) (the last recorded step when that range holds none); the token
  /// decoded at a step counts for its own page.
  void add_page_mass(int64_t step, int32_t horizon, std::span<float> out) const override;

  /// Appends one value per layer to `out`: the share of step `step`'s attention mass that falls
  /// on `pages` (logical pages, ascending) or on the decoded token itself, which every method
  /// attends to. Throws DecodeError when the step was not recorded.
  void coverage(int64_t step, std::span<const int32_t> pages, std::vector<float>& out) const;

 private:
  int64_t first_position_;
  int64_t page_tokens_;
  std::vector<AttentionMass> steps_;
};

}  // namespace lsa_decode
