// LookaheadPolicy::select over a 1M-token history: 262,144 chunks -> 16,384 pages -> kmax 2048.
//
// Scores: ~10% of chunks above 0.5, independent per chunk (so ~81% of pages hold a kept chunk: the
// ranking is as large as it gets); the current resident set is another draw's selection.
// Counters: us_per_selection (wall clock per select call), ns_per_chunk, pages_with_kept_chunk
// (ranked pages), selected (pages in the new resident set).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "bench_util.hpp"
#include "lsa/chunker.hpp"
#include "lsa/detail/page_ranking.hpp"
#include "lsa/lookahead_policy.hpp"
#include "lsa/policy_config.hpp"

namespace {

constexpr int32_t kChunkTokens = 4;
constexpr int32_t kPageChunks = 16;
constexpr int64_t kNumTokens = int64_t{1} << 20;           // 1M tokens
constexpr int64_t kNumChunks = kNumTokens / kChunkTokens;  // 262,144
constexpr int64_t kNumPages = kNumChunks / kPageChunks;    // 16,384

// ~10% of chunks above 0.5: 0.1 * U(0.5, 1] + 0.9 * U[0, 0.5).
std::vector<float> make_scores(uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 0.5f);
  std::bernoulli_distribution hot(0.10);
  std::vector<float> scores(static_cast<size_t>(kNumChunks));
  for (float& s : scores) s = hot(rng) ? 1.0f - u(rng) : u(rng);
  return scores;
}

lsa::PolicyConfig make_config(lsa::Selection selection, lsa::PageScore page_score,
                              float hysteresis) {
  lsa::PolicyConfig p;
  p.selection = selection;
  p.threshold = 0.5f;
  p.top_k_chunks = 2048;
  p.page_score = page_score;
  p.kmax_pages = 2048;
  p.sink_chunks = 1;
  p.recent_chunks = 2048;
  p.hysteresis = hysteresis;
  return p;
}

void run_select(benchmark::State& state, lsa::Selection selection, lsa::PageScore page_score,
                float hysteresis) {
  static const std::vector<float> scores = make_scores(1);
  static const std::vector<float> previous_scores = make_scores(2);
  const lsa::LookaheadPolicy policy(make_config(selection, page_score, hysteresis),
                                    lsa::Chunker(kChunkTokens, kPageChunks));
  lsa::detail::SelectionScratch scratch;

  // The current resident set: what the same policy chose from another draw, ascending.
  lsa::SelectionInput in;
  in.num_tokens = kNumTokens;
  in.first_uncommitted_page = kNumPages;
  in.probabilities = true;
  in.scores = previous_scores;
  std::vector<int32_t> resident;
  policy.select(in, scratch, resident);
  std::sort(resident.begin(), resident.end());
  in.resident_pages = resident;
  in.scores = scores;

  std::vector<int32_t> out;
  policy.select(in, scratch, out);  // warm: scratch grows here, not in the loop
  int64_t candidates = 0;
  for (int64_t p = 0; p < kNumPages; ++p) candidates += scratch.page_score[p] > -INFINITY;

  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    policy.select(in, scratch, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double ns = timer.ns_per_item(state, 1.0);
  state.counters["us_per_selection"] = ns / 1e3;
  state.counters["ns_per_chunk"] = ns / static_cast<double>(kNumChunks);
  state.counters["pages_with_kept_chunk"] = static_cast<double>(candidates);
  state.counters["selected"] = static_cast<double>(out.size());
  if (selection == lsa::Selection::kThreshold && out.size() != 2048) {
    state.SkipWithError("expected a full kmax set");
  }
}

void BM_Select(benchmark::State& state, lsa::Selection selection, lsa::PageScore page_score,
               float hysteresis) {
  run_select(state, selection, page_score, hysteresis);
}

BENCHMARK_CAPTURE(BM_Select, threshold_kept_chunks, lsa::Selection::kThreshold,
                  lsa::PageScore::kKeptChunks, 0.0f)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Select, threshold_score_mass, lsa::Selection::kThreshold,
                  lsa::PageScore::kScoreMass, 0.0f)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Select, threshold_kept_chunks_hysteresis, lsa::Selection::kThreshold,
                  lsa::PageScore::kKeptChunks, 1.0f)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Select, top_k_2048_kept_chunks, lsa::Selection::kTopK,
                  lsa::PageScore::kKeptChunks, 0.0f)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Select, top_k_2048_score_mass, lsa::Selection::kTopK,
                  lsa::PageScore::kScoreMass, 0.0f)
    ->Unit(benchmark::kMicrosecond);

// The two scans over chunks (mark, then page scores) that the other selection modes make.
void BM_SelectPart_MarkKeptThreshold(benchmark::State& state) {
  static const std::vector<float> scores = make_scores(1);
  const lsa::PolicyConfig config =
      make_config(lsa::Selection::kThreshold, lsa::PageScore::kKeptChunks, 0.0f);
  lsa::detail::SelectionScratch scratch;
  lsa::detail::mark_kept_chunks(config, true, scores, scratch);
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    lsa::detail::mark_kept_chunks(config, true, scores, scratch);
    benchmark::DoNotOptimize(scratch.kept.data());
    benchmark::ClobberMemory();
  }
  state.counters["us_per_call"] = timer.ns_per_item(state, 1.0) / 1e3;
}
BENCHMARK(BM_SelectPart_MarkKeptThreshold)->Unit(benchmark::kMicrosecond);

void BM_SelectPart_ScorePages(benchmark::State& state) {
  static const std::vector<float> scores = make_scores(1);
  const lsa::PolicyConfig config =
      make_config(lsa::Selection::kThreshold, lsa::PageScore::kKeptChunks, 0.0f);
  lsa::detail::SelectionScratch scratch;
  lsa::detail::mark_kept_chunks(config, true, scores, scratch);
  lsa::detail::score_pages(config, scores, kNumPages, kPageChunks, scratch);
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    lsa::detail::score_pages(config, scores, kNumPages, kPageChunks, scratch);
    benchmark::DoNotOptimize(scratch.page_score.data());
    benchmark::ClobberMemory();
  }
  state.counters["us_per_call"] = timer.ns_per_item(state, 1.0) / 1e3;
}
BENCHMARK(BM_SelectPart_ScorePages)->Unit(benchmark::kMicrosecond);

// The fused pass select() takes for threshold + kept-chunk counts (kept bytes and page scores).
void BM_SelectPart_MarkAndCountThreshold(benchmark::State& state) {
  static const std::vector<float> scores = make_scores(1);
  const lsa::PolicyConfig config =
      make_config(lsa::Selection::kThreshold, lsa::PageScore::kKeptChunks, 0.0f);
  lsa::detail::SelectionScratch scratch;
  lsa::detail::mark_and_count_threshold(config, scores, kNumPages, kPageChunks, scratch);
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    lsa::detail::mark_and_count_threshold(config, scores, kNumPages, kPageChunks, scratch);
    benchmark::DoNotOptimize(scratch.page_score.data());
    benchmark::ClobberMemory();
  }
  state.counters["us_per_call"] = timer.ns_per_item(state, 1.0) / 1e3;
}
BENCHMARK(BM_SelectPart_MarkAndCountThreshold)->Unit(benchmark::kMicrosecond);

// Reading the scores once (1 MiB of floats): the memory floor of any selection over them.
void BM_SelectFloor_ReadScores(benchmark::State& state) {
  static const std::vector<float> scores = make_scores(1);
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    benchmark::DoNotOptimize(lsa::bench::read_stream(
        reinterpret_cast<const std::byte*>(scores.data()), scores.size() * sizeof(float)));
  }
  state.counters["us_per_call"] = timer.ns_per_item(state, 1.0) / 1e3;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(scores.size() * sizeof(float)));
}
BENCHMARK(BM_SelectFloor_ReadScores)->Unit(benchmark::kMicrosecond);

}  // namespace
