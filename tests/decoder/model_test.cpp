// The decoder's model and lsa session on the real SmolLM2 model: logits against an independent
// float64 reference, dense vs lsa equivalence, and the budget. Skipped (WARN) without the model.
#include "model.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "each_target.hpp"
#include "error.hpp"
#include "gguf.hpp"
#include "session.hpp"
#include "tokenizer.hpp"

#ifndef LSA_MODELS_DIR
#define LSA_MODELS_DIR ""
#endif

namespace {

using lsa_decode::CacheOptions;
using lsa_decode::KvType;
using lsa_decode::LlamaModel;
using lsa_decode::TokenState;

struct Loaded {
  explicit Loaded(const std::string& path) : file(lsa_decode::GgufFile::open(path)), model(file, 2) {}
  lsa_decode::GgufFile file;
  LlamaModel model;
};

// The model, loaded once for every test; null (and a WARN) when the file is missing.
const Loaded* loaded() {
  static const std::unique_ptr<Loaded> instance = []() -> std::unique_ptr<Loaded> {
    const std::string path = std::string(LSA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::filesystem::exists(path)) return nullptr;
    return std::make_unique<Loaded>(path);
  }();
  if (instance == nullptr) WARN("model file missing (run scripts/fetch_model.sh): test skipped");
  return instance.get();
}

std::vector<float> prefill_last_logits(const LlamaModel& m, const std::vector<int32_t>& ids,
                                       std::vector<TokenState>& states, KvType kv = KvType::kF32) {
  std::vector<float> logits;
  const int64_t last = static_cast<int64_t>(ids.size()) - 1;
  m.prefill(
      ids, states, std::span(&last, 1),
      [&](int64_t, std::span<const float> row) { logits.assign(row.begin(), row.end()); }, {},
      nullptr, kv);
  return logits;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i])));
  return d;
}

// The opening verses of Genesis (KJV, public domain; scripts/genesis.sh prints the whole book):
// the fixed text of the f16 perplexity check.
constexpr const char* kGenesisOpening =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep. And "
    "the Spirit of God moved upon the face of the waters.\n"
    "And God said, Let there be light: and there was light.\n"
    "And God saw the light, that it was good: and God divided the light from the darkness.\n"
    "And God called the light Day, and the darkness he called Night. And the evening and the "
    "morning were the first day.\n"
    "And God said, Let there be a firmament in the midst of the waters, and let it divide the "
    "waters from the waters.\n"
    "And God made the firmament, and divided the waters which were under the firmament from the "
    "waters which were above the firmament: and it was so.\n"
    "And God called the firmament Heaven. And the evening and the morning were the second day.\n"
    "And God said, Let the waters under the heaven be gathered together unto one place, and let "
    "the dry land appear: and it was so.\n"
    "And God called the dry land Earth; and the gathering together of the waters called he Seas: "
    "and God saw that it was good.\n"
    "And God said, Let the earth bring forth grass, the herb yielding seed, and the fruit tree "
    "yielding fruit after his kind, whose seed is in itself, upon the earth: and it was so.\n"
    "And the earth brought forth grass, and herb yielding seed after his kind, and the tree "
    "yielding fruit, whose seed was in itself, after his kind: and God saw that it was good.\n"
    "And the evening and the morning were the third day.\n";

// Mean negative log-likelihood of each next token of `ids` under a dense prefill with `kv`.
double mean_nll(const LlamaModel& m, const std::vector<int32_t>& ids, KvType kv) {
  std::vector<int64_t> positions(ids.size() - 1);
  std::iota(positions.begin(), positions.end(), 0);
  std::vector<TokenState> states;
  double nll = 0.0;
  m.prefill(
      ids, states, positions,
      [&](int64_t p, std::span<const float> row) {
        const float mx = *std::max_element(row.begin(), row.end());
        double sum = 0.0;
        for (const float x : row) sum += std::exp(double(x) - mx);
        nll -= double(row[ids[static_cast<size_t>(p + 1)]]) - mx - std::log(sum);
      },
      {}, nullptr, kv);
  return nll / static_cast<double>(positions.size());
}

// A deterministic token sequence of ordinary ids.
std::vector<int32_t> tokens(int64_t n, uint32_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  uint32_t s = seed;
  for (int32_t& id : ids) {
    s = s * 1664525u + 1013904223u;
    id = 100 + static_cast<int32_t>((s >> 8) % 20000);
  }
  return ids;
}

// The top-5 of the prefill's last logits are `want`, in order, each within 1e-4 (the values
// are given to 5 decimals; logits of this model are about 20).
void check_top5(const Loaded& l, const std::vector<int32_t>& ids,
                const std::vector<std::pair<int32_t, double>>& want) {
  std::vector<TokenState> states;
  const std::vector<float> logits = prefill_last_logits(l.model, ids, states);
  REQUIRE(logits.size() == 49152);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + 5, order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("rank " << i << ": logit " << logits[want[i].first] << ", want " << want[i].second);
    CHECK(order[i] == want[i].first);
    CHECK(std::abs(logits[want[i].first] - want[i].second) < 1e-4);
  }
}

}  // namespace

TEST_CASE("model: prefill logits match an independent float64 reference", "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  // Expected values from examples/decoder/tools/reference_logits.py (numpy float64 forward over
  // weights dequantized by the `gguf` Python package):
  //   python3 examples/decoder/tools/reference_logits.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
  //     504,3458,314,4198,429,253,10225,30
  // On every SIMD target the CPU supports: each runs its own kernels end to end.
  lsa_decode_test::for_each_target([&](const std::string&) {
    const std::vector<int32_t> ids = {504, 3458, 314, 4198, 429, 253, 10225, 30};
    check_top5(
        *l, ids,
        {{198, 23.02016}, {216, 22.42674}, {378, 21.47441}, {33, 21.10227}, {1094, 21.06074}});
  });
}

TEST_CASE("model: prefill logits of a fixed prompt stay at the fp32 path's values",
          "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  // "The capital of France is" (raw, no BOS), as docs/decoder.md lists it: the values of the
  // decoder when it still multiplied weights dequantized to fp32.
  check_top5(
      *l, {504, 3575, 282, 4649, 314},
      {{7042, 17.37127}, {260, 14.88859}, {4528, 13.24498}, {2250, 13.00947}, {1315, 12.95152}});
}

TEST_CASE("model: the decode step reproduces the prefill's logits", "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  const KvType kv = GENERATE(KvType::kF32, KvType::kF16);
  INFO("kv " << lsa_decode::kv_name(kv));
  const std::vector<int32_t> ids = tokens(40, 7);
  std::vector<TokenState> states;
  const std::vector<float> want = prefill_last_logits(l->model, ids, states, kv);
  // The same history token by token through a dense session.
  CacheOptions o;
  o.dense = true;
  o.max_tokens = 64;
  o.kv = kv;
  auto session = lsa_decode::make_session(l->model, o);
  std::vector<float> got;
  for (int32_t id : ids) got = session->decode(id);
  REQUIRE(got.size() == want.size());
  double max_diff = 0.0;
  for (size_t i = 0; i < got.size(); ++i) max_diff = std::max(max_diff, double(std::abs(got[i] - want[i])));
  INFO("max |decode - prefill| = " << max_diff);
  // fp32: the two paths differ only in summation order (measured 5.4e-5). f16: that difference
  // now and then moves a K or V value across an f16 rounding boundary, a full f16 ulp (2^-11
  // relative) instead of ~1e-7 (measured 4.2e-3).
  CHECK(max_diff < (kv == KvType::kF32 ? 1e-3 : 1e-2));
  // And the per-token states the sessions keep agree with the prefill's K/V.
  CHECK(session->length() == 40);
}

TEST_CASE("model: a decode step's attention split into runs of pages gives the one-run logits",
          "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  const KvType kv = GENERATE(KvType::kF32, KvType::kF16);
  INFO("kv " << lsa_decode::kv_name(kv));
  const std::vector<int32_t> ids = tokens(100, 5);  // 7 pages: runs of 16 tokens give 6 runs
  // The model is shared by the tests (loaded once, const): the default is back before any check.
  LlamaModel& model = const_cast<LlamaModel&>(l->model);
  auto decode_all = [&](int64_t run_tokens) {
    model.set_attention_run_tokens(run_tokens);
    CacheOptions o;
    o.dense = true;
    o.max_tokens = 128;
    o.kv = kv;
    auto session = lsa_decode::make_session(l->model, o);
    std::vector<float> logits;
    for (int32_t id : ids) logits = session->decode(id);
    model.set_attention_run_tokens(512);
    return logits;
  };
  const std::vector<float> one = decode_all(512), split = decode_all(16), again = decode_all(16);
  REQUIRE(one.size() == split.size());
  double max_diff = 0.0;
  for (size_t i = 0; i < one.size(); ++i) max_diff = std::max(max_diff, double(std::abs(one[i] - split[i])));
  INFO("max |split - one run| = " << max_diff);
  CHECK(max_diff > 0.0);  // the split path ran: its sums are in another order
  // As between decode and prefill (above): f16 pages round later tokens' K and V, so a summation
  // order difference can move a value by a full f16 ulp (measured: f32 KV 2.1e-5, f16 KV 2.4e-3).
  CHECK(max_diff < (kv == KvType::kF32 ? 1e-3 : 1e-2));
  CHECK(split == again);  // and it is deterministic
}

TEST_CASE("model: lsa with a budget that covers the context gives bit-identical logits to dense",
          "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  // Both KV types: dense f16 against full-budget lsa f16 as well.
  const KvType kv = GENERATE(KvType::kF32, KvType::kF16);
  INFO("kv " << lsa_decode::kv_name(kv));
  const std::vector<int32_t> prompt = tokens(70, 11), next = tokens(12, 12);
  std::vector<TokenState> states;
  (void)prefill_last_logits(l->model, prompt, states, kv);
  CacheOptions dense;
  dense.dense = true;
  dense.max_tokens = 96;
  dense.kv = kv;
  CacheOptions covering = dense;
  covering.dense = false;
  covering.budget_fraction = 1.0;
  covering.interval = 3;
  auto a = lsa_decode::make_session(l->model, dense);
  auto b = lsa_decode::make_session(l->model, covering);
  a->append_prefill(states);
  b->append_prefill(states);
  for (size_t t = 0; t < next.size(); ++t) {
    INFO("step " << t);
    const std::vector<float> la = a->decode(next[t]);
    const std::vector<float>& lb = b->decode(next[t]);
    REQUIRE(la == lb);  // bit-identical
  }
  CHECK(b->stats().resident_fraction == 1.0);
}

TEST_CASE("model: f16 KV pages hold half the bytes and keep the logits near the f32 path",
          "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  // On every SIMD target: each widens f16 and rounds to it with its own kernels.
  lsa_decode_test::for_each_target([&](const std::string&) {
    const std::vector<int32_t> prompt = tokens(70, 11), next = tokens(12, 12);
    std::vector<TokenState> states32, states16;
    const std::vector<float> prefill32 = prefill_last_logits(l->model, prompt, states32);
    const std::vector<float> prefill16 =
        prefill_last_logits(l->model, prompt, states16, KvType::kF16);
    const double prefill_diff = max_abs_diff(prefill32, prefill16);
    INFO("prefill: max |f16 - f32| logit = " << prefill_diff);
    CHECK(prefill_diff > 0.0);  // f16 is really used
    CHECK(prefill_diff < 0.05);
    CacheOptions o;
    o.budget_fraction = 0.5;  // sparse: the f16 pages go through refreshes and evictions
    o.interval = 4;
    o.max_tokens = 96;
    auto a = lsa_decode::make_session(l->model, o);
    o.kv = KvType::kF16;
    auto b = lsa_decode::make_session(l->model, o);
    CHECK(b->cache_config().page_bytes() * 2 == a->cache_config().page_bytes());
    a->append_prefill(states32);
    b->append_prefill(states16);
    double decode_diff = 0.0;
    for (const int32_t id : next) {
      const std::vector<float> la = a->decode(id);
      decode_diff = std::max(decode_diff, max_abs_diff(la, b->decode(id)));
    }
    INFO("decode: max |f16 - f32| logit = " << decode_diff);
    CHECK(decode_diff < 0.05);
    CHECK(b->stats().resident_fraction < 1.0);
  });
}

TEST_CASE("model: f16 KV changes the perplexity of a fixed text by little", "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  const lsa_decode::Tokenizer tok(l->file);
  const std::vector<int32_t> ids = tok.encode(kGenesisOpening, /*parse_special=*/false);
  REQUIRE(ids.size() > 200);
  const double nll32 = mean_nll(l->model, ids, KvType::kF32);
  const double nll16 = mean_nll(l->model, ids, KvType::kF16);
  INFO(ids.size() << " tokens: perplexity f32 " << std::exp(nll32) << ", f16 " << std::exp(nll16));
  CHECK(nll16 != nll32);
  CHECK(std::abs(std::exp(nll16) - std::exp(nll32)) < 0.01 * std::exp(nll32));
}

TEST_CASE("model: a sparse budget keeps at most kmax pages resident and still decodes",
          "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  const std::vector<int32_t> prompt = tokens(160, 21), next = tokens(20, 22);
  std::vector<TokenState> states;
  (void)prefill_last_logits(l->model, prompt, states);
  CacheOptions o;
  o.budget_fraction = 0.4;
  o.interval = 4;
  o.max_tokens = 192;
  auto s = lsa_decode::make_session(l->model, o);
  s->append_prefill(states);
  const int32_t kmax = s->cache_config().policy.kmax_pages;
  CHECK(kmax == 5);  // ceil(0.4 * 12 pages of 16 tokens)
  for (int32_t id : next) {
    const std::vector<float>& logits = s->decode(id);
    REQUIRE(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); }));
    CHECK(static_cast<int64_t>(s->view_pages().size()) <= kmax);
  }
  const lsa::Stats st = s->stats();
  CHECK(st.resident_pages <= kmax);
  CHECK(st.total_pages == 12);
  CHECK(st.refreshes >= 4);
}

TEST_CASE("model: bad input is refused with a message naming it", "[decoder][model]") {
  const Loaded* l = loaded();
  if (l == nullptr) return;
  std::vector<TokenState> states;
  const std::vector<int32_t> bad = {1, 2, 49152};
  CHECK_THROWS_WITH(prefill_last_logits(l->model, bad, states), Catch::Contains("49152"));
  CacheOptions o;
  o.budget_fraction = 0.001;
  o.max_tokens = 64;
  CHECK_THROWS_WITH(lsa_decode::make_session(l->model, o), Catch::Contains("--budget"));
  CHECK_THROWS_WITH(lsa_decode::parse_scorer("quest"), Catch::Contains("quest"));
  CHECK_THROWS_WITH(lsa_decode::parse_kv_type("f8"),
                    Catch::Contains("--kv") && Catch::Contains("'f8'"));
  o.budget_fraction = 1.0;
  auto s = lsa_decode::make_session(l->model, o);
  CHECK_THROWS_WITH(s->decode(-1), Catch::Contains("-1"));
}
