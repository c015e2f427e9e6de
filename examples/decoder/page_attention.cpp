#include "page_attention.hpp"

#include <hwy/base.h>
#include <hwy/cache_control.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.hpp"
#include "thread_pool.hpp"

namespace lsa_decode {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Pages ahead of the one in use whose rows are requested: each page is its own block of memory,
// too short for the hardware prefetchers to learn its stride.
constexpr int64_t kPrefetchPages = 2;

// Requests one head's K or V rows of a page (head_dim elements at `offset` in each token of the
// layer).
template <class T>
void prefetch_rows(const KvPage& page, const PageAttentionShape& s, int64_t offset) {
  const T* first = reinterpret_cast<const T*>(page.base) + s.layer_offset + offset;
  const int64_t row_bytes = s.head_dim * static_cast<int64_t>(sizeof(T));
  for (int64_t t = 0; t < page.num_tokens; ++t) {
    const auto* row = reinterpret_cast<const char*>(first + t * s.kv_floats);
    for (int64_t b = 0; b < row_bytes; b += 64) hwy::Prefetch(row + b);
  }
}

// One run of pages [first, last) for every head, KV head by KV head: the scores of its query
// heads over the run's K rows, page after page; their exp against the run's maximum; then the
// sum of those times the V rows, page after page. Out per head: the run's maximum m, the sum of
// exp(score - m) and of exp(score - m) v; for the mass, each page's sum of exp(score - m).
template <class T>
void attend_run(std::span<const KvPage> pages, int64_t first, int64_t last, const PageAttentionShape& s,
                const float* q, float* run_max, float* run_sum, float* run_out, float* scores,
                int64_t ld_scores, float* page_sum) {
  const int64_t H = s.num_heads, KV = s.num_kv_heads, hd = s.head_dim, group = H / KV;
  const auto page = [&](int64_t i) -> const KvPage& { return pages[static_cast<size_t>(i)]; };
  const auto rows = [&](int64_t i, int64_t offset) {
    return reinterpret_cast<const T*>(page(i).base) + s.layer_offset + offset;
  };
  int64_t run_tokens = 0;
  for (int64_t i = first; i < last; ++i) run_tokens += page(i).num_tokens;
  std::fill(run_out, run_out + H * hd, 0.0f);
  for (int64_t g = 0; g < KV; ++g) {
    const int64_t k_at = g * hd, v_at = (KV + g) * hd;
    // scores[r][j] = q_r . k_j over the run's tokens j (q is scaled by 1/sqrt(head_dim) already).
    for (int64_t i = first, j = 0; i < last; j += page(i).num_tokens, ++i) {
      if (i + kPrefetchPages < last) prefetch_rows<T>(page(i + kPrefetchPages), s, k_at);
      matmul_rows(q + g * group * hd, group, hd, rows(i, k_at), page(i).num_tokens, s.kv_floats,
                  scores + j, ld_scores);
    }
    for (int64_t r = 0; r < group; ++r) {
      const int64_t h = g * group + r;
      float* row = scores + r * ld_scores;
      run_max[h] = kNegInf;
      run_sum[h] = exp_sum(row, run_tokens, &run_max[h]);
      if (page_sum == nullptr) continue;
      for (int64_t i = first, j = 0; i < last; ++i) {
        double sum = 0.0;
        for (const int64_t end = j + page(i).num_tokens; j < end; ++j) sum += row[j];
        page_sum[i * H + h] = static_cast<float>(sum);
      }
    }
    for (int64_t i = first, j = 0; i < last; j += page(i).num_tokens, ++i) {
      if (i + kPrefetchPages < last) prefetch_rows<T>(page(i + kPrefetchPages), s, v_at);
      matmul_nn_add(scores + j, group, page(i).num_tokens, ld_scores, rows(i, v_at), hd, s.kv_floats,
                    run_out + g * group * hd, hd);
    }
  }
}

}  // namespace

PageRuns cut_into_runs(std::span<const KvPage> pages, int64_t run_tokens) {
  const auto num_pages = static_cast<int64_t>(pages.size());
  int64_t context = 1;
  for (const KvPage& p : pages) context += p.num_tokens;
  const int64_t wanted = run_tokens <= 0 ? 1 : std::clamp<int64_t>(context / run_tokens, 1, kMaxRuns);
  const int64_t runs = std::min(num_pages, wanted);
  PageRuns out;
  out.first_page.assign(1, 0);
  for (int64_t r = 1; r <= runs; ++r) {
    const int64_t first = out.first_page.back(), last = num_pages * r / runs;
    int64_t tokens = 0;
    for (int64_t i = first; i < last; ++i) tokens += pages[static_cast<size_t>(i)].num_tokens;
    out.max_run_tokens = std::max(out.max_run_tokens, tokens);
    out.first_page.push_back(last);
  }
  return out;
}

template <class T>
void attend_pages(ThreadPool& pool, std::span<const KvPage> pages, const PageRuns& runs,
                  const PageAttentionShape& s, const float* q, const float* kv_self, float* out,
                  float* mass, PageAttentionScratch& scratch) {
  const int64_t H = s.num_heads, KV = s.num_kv_heads, hd = s.head_dim, group = H / KV;
  const int64_t num_runs = runs.count();
  const auto num_pages = static_cast<int64_t>(pages.size());
  const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  scratch.query.resize(static_cast<size_t>(H * hd));
  for (int64_t e = 0; e < H * hd; ++e) scratch.query[static_cast<size_t>(e)] = q[e] * scale;
  scratch.run_max.resize(static_cast<size_t>(num_runs * H));
  scratch.run_sum.resize(static_cast<size_t>(num_runs * H));
  scratch.run_out.resize(static_cast<size_t>(num_runs * H * hd));
  scratch.scores.resize(static_cast<size_t>(num_runs * group * runs.max_run_tokens));
  scratch.page_sum.resize(mass != nullptr ? static_cast<size_t>(num_pages * H) : 0);
  float* page_sum = mass != nullptr ? scratch.page_sum.data() : nullptr;
  pool.parallel_for(num_runs, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      attend_run<T>(pages, runs.first_page[static_cast<size_t>(r)], runs.first_page[static_cast<size_t>(r + 1)],
                    s, scratch.query.data(), scratch.run_max.data() + r * H, scratch.run_sum.data() + r * H,
                    scratch.run_out.data() + r * H * hd,
                    scratch.scores.data() + r * group * runs.max_run_tokens, runs.max_run_tokens, page_sum);
    }
  });
  // Merge the runs and the token itself, per head, in a fixed order.
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    const float* qh = scratch.query.data() + h * hd;
    const float self_score = dot(qh, kv_self + g * hd, hd);
    float top = self_score;
    for (int64_t r = 0; r < num_runs; ++r) top = std::max(top, scratch.run_max[static_cast<size_t>(r * H + h)]);
    const float self_weight = std::exp(self_score - top);
    float total = self_weight;
    float* o = out + h * hd;
    std::fill(o, o + hd, 0.0f);
    for (int64_t r = 0; r < num_runs; ++r) {
      const float w = std::exp(scratch.run_max[static_cast<size_t>(r * H + h)] - top);
      total += w * scratch.run_sum[static_cast<size_t>(r * H + h)];
      axpy(w, scratch.run_out.data() + (r * H + h) * hd, o, hd);
    }
    axpy(self_weight, kv_self + (KV + g) * hd, o, hd);
    const float inv = 1.0f / total;
    for (int64_t e = 0; e < hd; ++e) o[e] *= inv;
    if (mass != nullptr) {
      for (int64_t r = 0; r < num_runs; ++r) {
        const float w = std::exp(scratch.run_max[static_cast<size_t>(r * H + h)] - top) * inv;
        for (int64_t i = runs.first_page[static_cast<size_t>(r)]; i < runs.first_page[static_cast<size_t>(r + 1)]; ++i) {
          mass[i] += page_sum[i * H + h] * w;
        }
      }
      mass[num_pages] += self_weight * inv;
    }
  }
}

template void attend_pages<float>(ThreadPool&, std::span<const KvPage>, const PageRuns&,
                                  const PageAttentionShape&, const float*, const float*, float*, float*,
                                  PageAttentionScratch&);
template void attend_pages<hwy::float16_t>(ThreadPool&, std::span<const KvPage>, const PageRuns&,
                                           const PageAttentionShape&, const float*, const float*, float*,
                                           float*, PageAttentionScratch&);

}  // namespace lsa_decode
