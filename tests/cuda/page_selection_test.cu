// Device page selection against LookaheadPolicy::select on the same scores: identical page lists.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <random>
#include <vector>

#include "lsa/chunker.hpp"
#include "lsa/fp8.hpp"
#include "lsa/cuda/chunk_selection.hpp"
#include "lsa/cuda/lightning.hpp"
#include "lsa/cuda/page_selection.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/lookahead_policy.hpp"
#include "support/gpu.hpp"

namespace {

using lsa::cuda::SelectionPath;
using lsa::cuda::testing::DeviceArray;

struct Case {
  lsa::PolicyConfig policy;
  int32_t chunk_tokens = 4;
  int32_t page_chunks = 16;
  int64_t num_tokens = 0;
  int64_t num_scores = 0;  // chunks with a score (<= full chunks)
  int64_t first_uncommitted_page = 0;
  std::vector<float> scores;
  std::vector<int32_t> resident;
};

// Scores on a coarse grid, so many chunks (and pages) tie; a few NaNs, which are never kept.
Case make_case(std::mt19937& rng, int64_t num_chunks, int32_t page_chunks) {
  Case c;
  c.page_chunks = page_chunks;
  c.chunk_tokens = std::uniform_int_distribution<int32_t>(1, 4)(rng);
  c.num_tokens = num_chunks * c.chunk_tokens + std::uniform_int_distribution<int32_t>(0, c.chunk_tokens - 1)(rng);
  const lsa::Chunker chunker(c.chunk_tokens, c.page_chunks);
  const int64_t full = chunker.num_full_chunks(c.num_tokens);
  c.num_scores = std::uniform_int_distribution<int>(0, 3)(rng) == 0
                     ? std::uniform_int_distribution<int64_t>(0, full)(rng)
                     : full;
  const int levels = std::uniform_int_distribution<int>(2, 40)(rng);
  std::uniform_int_distribution<int> level(0, levels);
  c.scores.resize(static_cast<size_t>(c.num_scores));
  for (float& s : c.scores) {
    s = static_cast<float>(level(rng)) / static_cast<float>(levels);
    if (std::uniform_int_distribution<int>(0, 999)(rng) == 0) s = NAN;
  }
  lsa::PolicyConfig& p = c.policy;
  // A third of the cases rank the top-k chunks instead (k below, at and above the chunk count).
  p.selection = std::uniform_int_distribution<int>(0, 2)(rng) == 0 ? lsa::Selection::kTopK
                                                                   : lsa::Selection::kThreshold;
  const int64_t ks[] = {1, 7, std::max<int64_t>(1, c.num_scores / 3), std::max<int64_t>(1, c.num_scores),
                        c.num_scores + 5};
  p.top_k_chunks = ks[std::uniform_int_distribution<int>(0, 4)(rng)];
  p.threshold = std::uniform_int_distribution<int>(0, 3)(rng) == 0 ? 0.25f : 0.5f;
  p.page_score = std::uniform_int_distribution<int>(0, 1)(rng) == 0 ? lsa::PageScore::kKeptChunks
                                                                     : lsa::PageScore::kScoreMass;
  const int32_t sinks[] = {0, 1, 5, 40};
  const int32_t recents[] = {0, 3, 64, 2048};
  p.sink_chunks = sinks[std::uniform_int_distribution<int>(0, 3)(rng)];
  p.recent_chunks = recents[std::uniform_int_distribution<int>(0, 3)(rng)];
  const int64_t forced = chunker.max_forced_pages(p.sink_chunks, p.recent_chunks);
  const int64_t num_pages = chunker.num_pages(c.num_tokens);
  const int64_t extras[] = {0, 1, 7, num_pages / 8, num_pages / 2, 5000};
  p.kmax_pages = static_cast<int32_t>(forced + extras[std::uniform_int_distribution<int>(0, 5)(rng)]);
  const float hysteresis[] = {0.0f, 0.0f, 0.5f, 2.0f};
  p.hysteresis = hysteresis[std::uniform_int_distribution<int>(0, 3)(rng)];
  const int32_t caps[] = {0, 0, 0, 3, 50};
  p.max_recall_pages = caps[std::uniform_int_distribution<int>(0, 4)(rng)];
  c.first_uncommitted_page =
      std::max<int64_t>(0, num_pages - std::uniform_int_distribution<int64_t>(0, 2)(rng));
  for (int64_t page = 0; page < num_pages; ++page) {
    if (std::uniform_int_distribution<int>(0, 9)(rng) < 3) c.resident.push_back(static_cast<int32_t>(page));
  }
  return c;
}

std::vector<int32_t> host_select(const Case& c) {
  const lsa::LookaheadPolicy policy(c.policy, lsa::Chunker(c.chunk_tokens, c.page_chunks));
  lsa::SelectionInput in;
  in.scores = c.scores;
  in.num_tokens = c.num_tokens;
  in.first_uncommitted_page = c.first_uncommitted_page;
  in.resident_pages = c.resident;
  in.probabilities = true;
  lsa::detail::SelectionScratch scratch;
  std::vector<int32_t> out;
  policy.select(in, scratch, out);
  return out;
}

// Runs the device selection on `path`; returns false when that path does not apply.
bool device_select(const Case& c, SelectionPath path, std::vector<int32_t>& out) {
  const lsa::Chunker chunker(c.chunk_tokens, c.page_chunks);
  DeviceArray<float> scores(c.scores);
  const int64_t stat_pages = lsa::cuda::num_stat_pages(c.num_scores, c.page_chunks);
  DeviceArray<int32_t> kept(static_cast<size_t>(stat_pages));
  DeviceArray<float> mass(static_cast<size_t>(stat_pages));
  const lsa::cuda::PageStats stats{c.policy.threshold, c.page_chunks, kept.get(), mass.get()};
  if (c.policy.selection == lsa::Selection::kTopK) {
    size_t stats_bytes = 0;
    LSA_CUDA_OK(lsa::cuda::top_k_page_stats(nullptr, stats_bytes, scores.get(), c.num_scores,
                                            c.policy.top_k_chunks, stats, nullptr));
    DeviceArray<std::byte> stats_workspace(stats_bytes);
    LSA_CUDA_OK(lsa::cuda::top_k_page_stats(stats_workspace.get(), stats_bytes, scores.get(), c.num_scores,
                                            c.policy.top_k_chunks, stats, nullptr));
  } else {
    LSA_CUDA_OK(lsa::cuda::compute_page_stats(scores.get(), c.num_scores, stats, nullptr));
  }
  DeviceArray<int32_t> resident(c.resident);
  lsa::cuda::PageSelectionInput in;
  in.d_kept = kept.get();
  in.d_mass = mass.get();
  in.num_scored_chunks = c.num_scores;
  in.num_tokens = c.num_tokens;
  in.first_uncommitted_page = c.first_uncommitted_page;
  in.d_resident_pages = resident.get();
  in.num_resident = static_cast<int64_t>(c.resident.size());
  in.path = path;
  const int64_t capacity =
      lsa::cuda::max_selected_pages(c.policy, chunker, c.num_tokens, c.first_uncommitted_page);
  DeviceArray<int32_t> pages(static_cast<size_t>(capacity));
  DeviceArray<int32_t> count(1);
  pages.fill_bytes(0x7F);
  count.fill_bytes(0x7F);
  size_t bytes = 0;
  const lsa::cuda::CudaError query =
      lsa::cuda::select_pages(nullptr, bytes, c.policy, chunker, in, pages.get(), count.get(), nullptr);
  if (query == lsa::cuda::CudaError::kNotSupported) return false;
  LSA_CUDA_OK(query);
  DeviceArray<std::byte> workspace(bytes);
  const lsa::cuda::CudaError run = lsa::cuda::select_pages(workspace.get(), bytes, c.policy, chunker, in,
                                                           pages.get(), count.get(), nullptr);
  if (run == lsa::cuda::CudaError::kNotSupported) return false;
  LSA_CUDA_OK(run);
  const int32_t n = count.download()[0];
  REQUIRE(n >= 0);
  REQUIRE(n <= capacity);
  std::vector<int32_t> all = pages.download();
  out.assign(all.begin(), all.begin() + n);
  return true;
}

void check(const Case& c, int64_t& block_runs, int64_t& sort_runs, int64_t& count_runs) {
  const std::vector<int32_t> expected = host_select(c);
  INFO("chunks " << c.num_scores << " tokens " << c.num_tokens << " chunk_tokens " << c.chunk_tokens
                 << " page_chunks " << c.page_chunks << " kmax " << c.policy.kmax_pages << " sink "
                 << c.policy.sink_chunks << " recent " << c.policy.recent_chunks << " mass "
                 << (c.policy.page_score == lsa::PageScore::kScoreMass) << " hysteresis "
                 << c.policy.hysteresis << " max_recall " << c.policy.max_recall_pages << " top_k "
                 << (c.policy.selection == lsa::Selection::kTopK ? c.policy.top_k_chunks : 0));
  for (const SelectionPath path : {SelectionPath::kAuto, SelectionPath::kCountSort, SelectionPath::kBlock,
                                   SelectionPath::kDeviceSort}) {
    std::vector<int32_t> got;
    if (!device_select(c, path, got)) {
      // Only the specialized paths may decline, and only for what they document.
      REQUIRE((path == SelectionPath::kBlock || path == SelectionPath::kCountSort));
      continue;
    }
    block_runs += path == SelectionPath::kBlock ? 1 : 0;
    count_runs += path == SelectionPath::kCountSort ? 1 : 0;
    sort_runs += path == SelectionPath::kDeviceSort ? 1 : 0;
    INFO("path " << static_cast<int>(path));
    REQUIRE(got.size() == expected.size());
    REQUIRE(got == expected);
  }
}

}  // namespace

TEST_CASE("select_pages matches LookaheadPolicy::select on random inputs", "[gpu][selection]") {
  LSA_REQUIRE_GPU();
  std::mt19937 rng(2024);
  int64_t block_runs = 0;
  int64_t sort_runs = 0;
  int64_t count_runs = 0;
  for (const int32_t page_chunks : {1, 3, 16, 64}) {
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{page_chunks - 1}, int64_t{page_chunks},
                            int64_t{page_chunks + 1}, int64_t{1000}, int64_t{20000}}) {
      for (int rep = 0; rep < 6; ++rep) check(make_case(rng, n, page_chunks), block_runs, sort_runs, count_runs);
    }
  }
  std::printf("selection: random cases identical to the host (count sort %lld runs, block %lld, "
              "device sort %lld)\n",
              static_cast<long long>(count_runs), static_cast<long long>(block_runs),
              static_cast<long long>(sort_runs));
  REQUIRE(block_runs > 0);
  REQUIRE(sort_runs > 0);
  REQUIRE(count_runs > 0);
}

TEST_CASE("select_pages matches LookaheadPolicy::select at 262144 chunks", "[gpu][selection][large]") {
  LSA_REQUIRE_GPU();
  std::mt19937 rng(77);
  int64_t block_runs = 0;
  int64_t sort_runs = 0;
  int64_t count_runs = 0;
  for (const int32_t page_chunks : {1, 16, 64}) {
    for (int rep = 0; rep < 3; ++rep) check(make_case(rng, 262144, page_chunks), block_runs, sort_runs, count_runs);
  }
  // The reference system's shape: 1M tokens, chunk 4, page 16 chunks, kmax 1024, no hysteresis.
  Case c = make_case(rng, 262144, 16);
  c.chunk_tokens = 4;
  c.num_tokens = 262144 * 4;
  c.num_scores = 262144;
  c.scores.resize(262144);
  for (float& s : c.scores) s = std::uniform_int_distribution<int>(0, 9)(rng) < 2 ? 0.9f : 0.1f;
  c.policy = lsa::PolicyConfig{};
  c.first_uncommitted_page = 16384;
  check(c, block_runs, sort_runs, count_runs);
  std::printf("selection at 262144 chunks: identical (count sort %lld runs, block %lld, device sort "
              "%lld)\n",
              static_cast<long long>(count_runs), static_cast<long long>(block_runs),
              static_cast<long long>(sort_runs));
}

TEST_CASE("lightning scores then select_pages equal the host policy on the same scores",
          "[gpu][selection][lightning]") {
  LSA_REQUIRE_GPU();
  // The refresh pipeline as the bench times it: fused page statistics straight into selection.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  lsa::ScorerConfig sc;
  sc.num_heads = 64;
  const int64_t num_chunks = 32768;
  const int64_t row_bytes = 132;
  std::vector<std::byte> rows(static_cast<size_t>(num_chunks * row_bytes));
  for (int64_t c = 0; c < num_chunks; ++c) {
    for (int i = 0; i < 128; ++i) rows[c * row_bytes + i] = static_cast<std::byte>(lsa::encode_fp8_e4m3(normal(rng)));
    const float scale = 0.05f;
    std::memcpy(&rows[c * row_bytes + 128], &scale, 4);
  }
  std::vector<float> q(64 * 128);
  for (float& x : q) x = normal(rng) * 0.3f;
  std::vector<float> w(64, 0.5f);  // logits about 2.2 +- 0.4: the offset keeps about a fifth
  sc.logit_offset = -2.5f;
  lsa::PolicyConfig policy;
  policy.kmax_pages = 600;
  const lsa::Chunker chunker(4, 16);
  DeviceArray<std::byte> d_rows(rows);
  DeviceArray<float> d_q(q);
  DeviceArray<float> d_w(w);
  DeviceArray<float> d_scores(num_chunks);
  DeviceArray<int32_t> d_kept(num_chunks / 16);
  DeviceArray<float> d_mass(num_chunks / 16);
  size_t bytes = 0;
  const lsa::cuda::LightningInput input{d_rows.get(), num_chunks, d_q.get(), d_w.get()};
  const lsa::cuda::PageStats stats{policy.threshold, 16, d_kept.get(), d_mass.get()};
  LSA_CUDA_OK(lsa::cuda::lightning_score(nullptr, bytes, sc, input, d_scores.get(), stats,
                                         lsa::cuda::LightningMath::kAuto, nullptr));
  DeviceArray<std::byte> ws(bytes);
  LSA_CUDA_OK(lsa::cuda::lightning_score(ws.get(), bytes, sc, input, d_scores.get(), stats,
                                         lsa::cuda::LightningMath::kAuto, nullptr));
  for (const lsa::PageScore mode : {lsa::PageScore::kKeptChunks, lsa::PageScore::kScoreMass}) {
    policy.page_score = mode;
    lsa::cuda::PageSelectionInput in;
    in.d_kept = d_kept.get();
    in.d_mass = d_mass.get();
    in.num_scored_chunks = num_chunks;
    in.num_tokens = num_chunks * 4;
    in.first_uncommitted_page = num_chunks / 16;
    const int64_t capacity = lsa::cuda::max_selected_pages(policy, chunker, in.num_tokens, in.first_uncommitted_page);
    DeviceArray<int32_t> pages(capacity);
    DeviceArray<int32_t> count(1);
    size_t select_bytes = 0;
    LSA_CUDA_OK(lsa::cuda::select_pages(nullptr, select_bytes, policy, chunker, in, pages.get(), count.get(), nullptr));
    DeviceArray<std::byte> select_ws(select_bytes);
    LSA_CUDA_OK(lsa::cuda::select_pages(select_ws.get(), select_bytes, policy, chunker, in, pages.get(),
                                        count.get(), nullptr));
    Case c;
    c.policy = policy;
    c.chunk_tokens = 4;
    c.page_chunks = 16;
    c.num_tokens = in.num_tokens;
    c.num_scores = num_chunks;
    c.first_uncommitted_page = in.first_uncommitted_page;
    c.scores = d_scores.download();
    const std::vector<int32_t> expected = host_select(c);
    const int32_t n = count.download()[0];
    std::vector<int32_t> got = pages.download();
    got.resize(static_cast<size_t>(n));
    int64_t kept_chunks = 0;
    for (float s : c.scores) kept_chunks += s > 0.5f ? 1 : 0;
    INFO("kept chunks " << kept_chunks);
    REQUIRE(kept_chunks > 0);
    REQUIRE(got == expected);
  }
}

TEST_CASE("top_k_page_stats refuses bad arguments", "[gpu][selection][errors]") {
  LSA_REQUIRE_GPU();
  DeviceArray<float> scores(std::vector<float>(10, 0.5f));
  DeviceArray<int32_t> kept(10);
  size_t bytes = 0;
  const lsa::cuda::PageStats stats{0.5f, 1, kept.get(), nullptr};
  using lsa::cuda::CudaError;
  REQUIRE(lsa::cuda::top_k_page_stats(nullptr, bytes, scores.get(), 10, 0, stats, nullptr) == CudaError::kInvalidValue);
  REQUIRE(lsa::cuda::top_k_page_stats(nullptr, bytes, nullptr, 10, 3, stats, nullptr) == CudaError::kInvalidValue);
  REQUIRE(lsa::cuda::top_k_page_stats(nullptr, bytes, scores.get(), 10, 3, {0.5f, 0, kept.get(), nullptr},
                                      nullptr) == CudaError::kInvalidValue);
  REQUIRE(lsa::cuda::top_k_page_stats(nullptr, bytes, scores.get(), 10, 3, stats, nullptr) == CudaError::kSuccess);
  DeviceArray<std::byte> workspace(bytes);
  size_t short_bytes = bytes - 1;
  REQUIRE(lsa::cuda::top_k_page_stats(workspace.get(), short_bytes, scores.get(), 10, 3, stats, nullptr) ==
          CudaError::kInvalidValue);
}
