// A decode step's attention over KV pages (page_attention.hpp) against a double-precision softmax
// over the same tokens, on random pages with short and empty ones, in one run or many, with f32
// and f16 elements, on every SIMD target the CPU supports.
#include "page_attention.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "each_target.hpp"
#include "kernels.hpp"
#include "thread_pool.hpp"

namespace {

namespace ld = lsa_decode;

struct Case {
  int64_t heads, kv_heads, head_dim;
};

// Pages of `capacity` tokens holding `counts` tokens each, for `layers` layers, random K and V
// (rounded to f16 when T is), and the same values widened to double for the reference.
template <class T>
struct Pages {
  std::vector<T> storage;
  std::vector<ld::KvPage> view;
  std::vector<std::vector<double>> tokens;  // per token: its kv_floats values in the tested layer

  Pages(const Case& c, const std::vector<int32_t>& counts, int64_t capacity, int64_t layers,
        int64_t layer, uint64_t seed) {
    const int64_t kvf = 2 * c.kv_heads * c.head_dim, page_elems = layers * capacity * kvf;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> values(static_cast<size_t>(page_elems) * counts.size());
    for (float& v : values) v = normal(rng);
    storage.resize(values.size());
    if constexpr (std::is_same_v<T, float>) {
      storage = values;
    } else {
      ld::to_f16(values.data(), storage.data(), static_cast<int64_t>(values.size()));
      ld::from_f16(storage.data(), values.data(), static_cast<int64_t>(values.size()));
    }
    for (size_t p = 0; p < counts.size(); ++p) {
      const T* base = storage.data() + static_cast<int64_t>(p) * page_elems;
      view.push_back({reinterpret_cast<const std::byte*>(base), counts[p]});
      for (int32_t t = 0; t < counts[p]; ++t) {
        const float* row = values.data() + static_cast<int64_t>(p) * page_elems + (layer * capacity + t) * kvf;
        tokens.emplace_back(row, row + kvf);
      }
    }
  }
};

template <class T>
void check_case(const Case& c, const std::vector<int32_t>& counts, int64_t run_tokens, uint64_t seed) {
  const int64_t capacity = 16, layers = 3, layer = 1, H = c.heads, hd = c.head_dim, KV = c.kv_heads;
  const int64_t kvf = 2 * KV * hd, group = H / KV;
  const Pages<T> pages(c, counts, capacity, layers, layer, seed);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> q(static_cast<size_t>(H * hd)), self(static_cast<size_t>(kvf));
  for (float& v : q) v = normal(rng);
  for (float& v : self) v = normal(rng);

  ld::ThreadPool pool(2);
  const ld::PageRuns runs = ld::cut_into_runs(pages.view, run_tokens);
  const ld::PageAttentionShape shape{H, KV, hd, kvf, layer * capacity * kvf};
  std::vector<float> out(static_cast<size_t>(H * hd)), mass(counts.size() + 1, 0.0f);
  ld::PageAttentionScratch scratch;
  ld::attend_pages<T>(pool, pages.view, runs, shape, q.data(), self.data(), out.data(), mass.data(),
                      scratch);

  // The reference: every token of the pages in order, then the token itself.
  std::vector<std::vector<double>> all = pages.tokens;
  all.emplace_back(self.begin(), self.end());
  std::vector<double> want_mass(counts.size() + 1, 0.0);
  for (int64_t h = 0; h < H; ++h) {
    const int64_t g = h / group;
    std::vector<double> score(all.size());
    double top = -INFINITY;
    for (size_t t = 0; t < all.size(); ++t) {
      double s = 0.0;
      for (int64_t e = 0; e < hd; ++e) s += double(q[static_cast<size_t>(h * hd + e)]) * all[t][static_cast<size_t>(g * hd + e)];
      score[t] = s / std::sqrt(double(hd));
      top = std::max(top, score[t]);
    }
    double sum = 0.0;
    for (double& s : score) sum += (s = std::exp(s - top));
    for (int64_t e = 0; e < hd; ++e) {
      double o = 0.0;
      for (size_t t = 0; t < all.size(); ++t) o += score[t] / sum * all[t][static_cast<size_t>((KV + g) * hd + e)];
      INFO("head " << h << " element " << e);
      REQUIRE(std::abs(out[static_cast<size_t>(h * hd + e)] - o) <= 2e-5 * (1.0 + std::abs(o)));
    }
    size_t t = 0;
    for (size_t p = 0; p < counts.size(); ++p) {
      for (int32_t i = 0; i < counts[p]; ++i) want_mass[p] += score[t++] / sum;
    }
    want_mass.back() += score[t] / sum;
  }
  double total = 0.0;
  for (size_t p = 0; p < mass.size(); ++p) {
    INFO("page " << p << " of " << counts.size() << " (the last entry: the token itself)");
    CHECK(mass[p] == Approx(want_mass[p]).margin(2e-5));
    total += mass[p];
  }
  CHECK(total == Approx(double(H)).epsilon(1e-5));

  // The same without the mass gives the same output bits, and a second call as well.
  std::vector<float> again(out.size());
  ld::attend_pages<T>(pool, pages.view, runs, shape, q.data(), self.data(), again.data(), nullptr, scratch);
  CHECK(again == out);
}

}  // namespace

TEST_CASE("page attention matches a double-precision softmax on every target", "[decoder][attention]") {
  const std::vector<Case> cases = {{9, 3, 64}, {4, 4, 20}, {6, 2, 8}};
  const std::vector<std::vector<int32_t>> layouts = {
      {},                                   // the first token: only itself
      {1},                                  // one token
      {16, 16, 5},                          // a partial last page
      {16, 0, 16, 3, 16, 16, 16, 9, 16, 1},  // an empty page among others
  };
  lsa_decode_test::for_each_target([&](const std::string&) {
    uint64_t seed = 300;
    for (const Case& c : cases) {
      for (const auto& counts : layouts) {
        for (const int64_t run_tokens : {0, 16, 40}) {
          INFO("heads " << c.heads << "/" << c.kv_heads << " head_dim " << c.head_dim << " pages "
                        << counts.size() << " run_tokens " << run_tokens);
          {
            INFO("f32");
            check_case<float>(c, counts, run_tokens, ++seed);
          }
          {
            INFO("f16");
            check_case<hwy::float16_t>(c, counts, run_tokens, ++seed);
          }
        }
      }
    }
  });
}

TEST_CASE("page attention cuts the pages into runs by the context alone", "[decoder][attention]") {
  std::vector<ld::KvPage> pages(40, ld::KvPage{nullptr, 16});
  pages.back().num_tokens = 7;
  const int64_t context = 39 * 16 + 7 + 1;
  for (const int64_t run_tokens : {-1, 0, 1, 16, 100, 512, 4096}) {
    INFO("run_tokens " << run_tokens);
    const ld::PageRuns runs = ld::cut_into_runs(pages, run_tokens);
    const int64_t want = run_tokens <= 0 ? 1 : std::clamp<int64_t>(context / run_tokens, 1, ld::kMaxRuns);
    REQUIRE(runs.count() == want);
    REQUIRE(runs.first_page.front() == 0);
    REQUIRE(runs.first_page.back() == 40);
    int64_t longest = 0;
    for (int64_t r = 0; r < runs.count(); ++r) {
      const int64_t first = runs.first_page[static_cast<size_t>(r)], last = runs.first_page[static_cast<size_t>(r + 1)];
      REQUIRE(first < last);  // no run without pages
      int64_t tokens = 0;
      for (int64_t i = first; i < last; ++i) tokens += pages[static_cast<size_t>(i)].num_tokens;
      longest = std::max(longest, tokens);
    }
    CHECK(runs.max_run_tokens == longest);
  }
  // Never more runs than pages, and none at all without pages.
  CHECK(ld::cut_into_runs(std::span(pages).first(3), 1).count() == 3);
  const ld::PageRuns none = ld::cut_into_runs({}, 16);
  CHECK(none.count() == 0);
  CHECK(none.max_run_tokens == 0);
}
