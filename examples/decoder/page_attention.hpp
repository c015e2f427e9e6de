// One decode step's attention over a list of KV pages, all heads of one layer, in one pass over
// the pages: each run of pages is scored, exponentiated against a running maximum and summed
// against V page by page (the order of "flash decoding"), then the runs and the token's own K and V
// are merged. Each page's bytes are read once, while they are in cache, and the next page's are
// requested ahead: pages are separate blocks of memory, too short for the hardware prefetchers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model.hpp"

namespace lsa_decode {

class ThreadPool;

/// Where one layer's K and V sit in a KV page, and how the query heads share them.
struct PageAttentionShape {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  ///< divides num_heads; head h reads KV head h / (num_heads / num_kv_heads)
  int64_t head_dim = 0;
  int64_t kv_floats = 0;     ///< elements per token: K of every KV head, then V of every KV head
  int64_t layer_offset = 0;  ///< elements from a page's base to this layer's [page_tokens][kv_floats]
};

/// The runs of pages a step's attention is cut into, the same for every layer of the step: run i
/// covers pages [first_page[i], first_page[i + 1]). Runs are fixed by the context, never by the
/// thread count, so the logits' bits do not depend on it.
struct PageRuns {
  std::vector<int64_t> first_page;
  int64_t max_run_tokens = 0;  ///< the most tokens in one run

  int64_t count() const { return static_cast<int64_t>(first_page.size()) - 1; }
};

/// One run per `run_tokens` of context (the pages' tokens plus the decoded one), at least 1 and at
/// most min(kMaxRuns, pages); no runs without pages. run_tokens <= 0: one run.
PageRuns cut_into_runs(std::span<const KvPage> pages, int64_t run_tokens);
inline constexpr int64_t kMaxRuns = 16;

/// Buffers reused by every layer of a step.
struct PageAttentionScratch {
  std::vector<float> query, run_max, run_sum, run_out, scores, page_sum;
};

/// out[h] = sum_t softmax_t(q_h . k_t / sqrt(head_dim)) v_t for each query head h, over the tokens
/// of `pages` (elements T: float or hwy::float16_t) and the decoded token's own k_self and v_self
/// (kv_floats of fp32: K then V, as a page holds them). q and out are [num_heads][head_dim].
/// mass (optional, [pages + 1]): += the probability on each page, summed over the heads, then on
/// the token itself. Runs in parallel over the runs.
template <class T>
void attend_pages(ThreadPool& pool, std::span<const KvPage> pages, const PageRuns& runs,
                  const PageAttentionShape& shape, const float* q, const float* kv_self, float* out,
                  float* mass, PageAttentionScratch& scratch);

}  // namespace lsa_decode
