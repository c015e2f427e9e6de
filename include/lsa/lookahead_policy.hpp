// The lookahead policy: when a sequence refreshes and how chunk scores become its resident pages.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "lsa/chunker.hpp"
#include "lsa/detail/page_ranking.hpp"
#include "lsa/policy_config.hpp"
#include "lsa/types.hpp"

namespace lsa {

/// Pages a sequence must keep resident whatever the scores say: [0, sink_end) and [suffix_begin, num_pages).
struct ForcedPages {
  int64_t sink_end = 0;      ///< sink pages are [0, sink_end)
  int64_t suffix_begin = 0;  ///< recent, tail and not-yet-committed pages are [suffix_begin, num_pages)
  int64_t num_pages = 0;     ///< pages of the history

  /// True when logical page `p` is forced.
  constexpr bool contains(int64_t p) const noexcept { return p < sink_end || p >= suffix_begin; }
  /// Number of forced pages.
  constexpr int64_t count() const noexcept {
    return std::min(sink_end, suffix_begin) + (num_pages - suffix_begin);
  }
};

/// What a refresh decides from: the scores and the sequence's current state.
struct SelectionInput {
  std::span<const float> scores;              ///< one per scored chunk
  int64_t num_tokens = 0;                     ///< history length
  int64_t first_uncommitted_page = 0;         ///< pages from here on are not in the mirror yet
  std::span<const int32_t> resident_pages;    ///< current resident set, ascending logical pages
  bool probabilities = true;                  ///< scores are probabilities (the scorer says)
};

/// Reference lookahead policy (DESIGN.md s.2): threshold / top-k / top-p chunks, page density, kmax.
class LookaheadPolicy {
 public:
  /// `config` must have passed lsa::validate.
  LookaheadPolicy(const PolicyConfig& config, Chunker chunker) : config_(config), chunker_(chunker) {}

  /// The configuration.
  const PolicyConfig& config() const noexcept { return config_; }

  /// Steps from a sequence's first refresh to its second; spreads refreshes of a batch over the interval.
  int32_t first_interval(SeqId seq) const noexcept {
    if (!config_.spread_phase || config_.interval == 1) return config_.interval;
    const uint64_t h = static_cast<uint64_t>(seq) * 0x9E3779B97F4A7C15ull;
    return 1 + static_cast<int32_t>((h >> 33) % static_cast<uint64_t>(config_.interval));
  }

  /// Steps between later refreshes.
  int32_t interval() const noexcept { return config_.interval; }

  /// Most pages a resident set holds once the history outgrows it.
  int32_t kmax_pages() const noexcept { return config_.kmax_pages; }

  /// True when the whole history fits the per-sequence budget (no scoring needed).
  bool fits(int64_t num_tokens) const noexcept {
    return chunker_.num_pages(num_tokens) <= config_.kmax_pages;
  }

  /// Sink, recent, tail and uncommitted pages of a history.
  ForcedPages forced(int64_t num_tokens, int64_t first_uncommitted_page) const noexcept {
    ForcedPages f;
    f.num_pages = chunker_.num_pages(num_tokens);
    const int64_t num_chunks = chunker_.num_chunks(num_tokens);
    f.sink_end = std::min(f.num_pages, chunker_.num_pages(int64_t{config_.sink_chunks} * chunker_.chunk_tokens()));
    const int64_t recent_first_chunk = std::max<int64_t>(0, num_chunks - config_.recent_chunks);
    f.suffix_begin = std::min({chunker_.page_of_chunk(recent_first_chunk),
                               std::max<int64_t>(f.num_pages - 1, 0), first_uncommitted_page});
    f.suffix_begin = std::max<int64_t>(0, std::min(f.suffix_begin, f.num_pages));
    return f;
  }

  /// Resident set without scores: the whole history when it fits, else the forced pages.
  void select_unscored(int64_t num_tokens, int64_t first_uncommitted_page,
                       std::vector<int32_t>& out) const {
    out.clear();
    const ForcedPages f = forced(num_tokens, first_uncommitted_page);
    if (fits(num_tokens)) {
      for (int64_t p = 0; p < f.num_pages; ++p) out.push_back(static_cast<int32_t>(p));
      return;
    }
    append_forced(f, out);
  }

  /// The new resident set from a refresh's scores: forced pages ascending, then the chosen pages
  /// best first (so a caller short of slots can drop from the end).
  void select(const SelectionInput& in, detail::SelectionScratch& s, std::vector<int32_t>& out) const {
    if (fits(in.num_tokens)) return select_unscored(in.num_tokens, in.first_uncommitted_page, out);
    const ForcedPages f = forced(in.num_tokens, in.first_uncommitted_page);
    if (config_.selection == Selection::kThreshold &&
        config_.page_score == PageScore::kKeptChunks) {
      detail::mark_and_count_threshold(config_, in.scores, f.num_pages, chunker_.page_chunks(), s);
    } else {
      detail::mark_kept_chunks(config_, in.probabilities, in.scores, s);
      detail::score_pages(config_, in.scores, f.num_pages, chunker_.page_chunks(), s);
    }
    if (config_.hysteresis > 0.0f) {
      for (int32_t p : in.resident_pages) {
        if (p < f.num_pages && s.page_score[p] > -INFINITY) s.page_score[p] += config_.hysteresis;
      }
    }
    out.clear();
    append_forced(f, out);
    // Candidates: unforced pages with at least one kept chunk (NaN scores are none), ranked by
    // (rank_key(score), page) ascending: best first, lower page on ties (detail::better).
    const int64_t first = f.sink_end;
    const int64_t span = std::max<int64_t>(0, f.suffix_begin - first);
    s.keys.resize(static_cast<size_t>(span));
    const float* page_score = s.page_score.data() + first;
    uint32_t* keys = s.keys.data();
    int64_t num_candidates = 0;
    for (int64_t i = 0; i < span; ++i) {
      const float score = page_score[i];
      const bool candidate = score > -INFINITY;
      keys[i] = candidate ? detail::rank_key(score) : detail::kUnrankedKey;
      num_candidates += candidate ? 1 : 0;
    }
    const int64_t budget = std::max<int64_t>(0, config_.kmax_pages - f.count());
    const bool capped = config_.max_recall_pages > 0;
    // Uncapped, only the best `budget` can be taken; capped, later ones may replace skipped ones.
    detail::rank_best(span, capped ? num_candidates : std::min(budget, num_candidates), s);
    int64_t taken = 0;
    int64_t recalled = 0;
    for (const int32_t i : s.ids) {
      if (taken == budget) break;
      const auto p = static_cast<int32_t>(first + i);
      if (capped) {
        const bool resident =
            std::binary_search(in.resident_pages.begin(), in.resident_pages.end(), p);
        if (!resident && recalled == config_.max_recall_pages) continue;
        recalled += resident ? 0 : 1;
      }
      out.push_back(p);
      ++taken;
    }
  }

 private:
  static void append_forced(const ForcedPages& f, std::vector<int32_t>& out) {
    for (int64_t p = 0; p < std::min(f.sink_end, f.suffix_begin); ++p) out.push_back(static_cast<int32_t>(p));
    for (int64_t p = f.suffix_begin; p < f.num_pages; ++p) out.push_back(static_cast<int32_t>(p));
  }

  PolicyConfig config_;
  Chunker chunker_;
};

/// A lookahead policy decides refresh timing and turns scores into a resident page set.
template <class P>
concept LookaheadPolicyLike = requires(const P& p, SeqId seq, int64_t n, const SelectionInput& in,
                                       detail::SelectionScratch& s, std::vector<int32_t>& out) {
  { p.first_interval(seq) } noexcept -> std::same_as<int32_t>;
  { p.interval() } noexcept -> std::same_as<int32_t>;
  { p.fits(n) } noexcept -> std::same_as<bool>;
  { p.kmax_pages() } noexcept -> std::same_as<int32_t>;
  { p.forced(n, n) } noexcept -> std::same_as<ForcedPages>;
  { p.select_unscored(n, n, out) };
  { p.select(in, s, out) };
};

}  // namespace lsa
