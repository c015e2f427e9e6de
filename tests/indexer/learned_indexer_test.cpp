// The learned indexer on the C++ side against the trainer's forward pass (the fixture file the
// Python package writes, tests/indexer/data), its file checks, and decoding sessions that use it
// (in its chunks, over the pages configured).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <lsa/lsa.hpp>

#include "error.hpp"
#include "eval_methods.hpp"
#include "indexer_file.hpp"
#include "session.hpp"
#include "support/gguf_builder.hpp"
#include "support/tiny_llama.hpp"

#ifndef LSA_SOURCE_DIR
#define LSA_SOURCE_DIR ""
#endif

namespace {

namespace ld = lsa_decode;
using namespace gguf_builder;

const std::string kFixture = std::string(LSA_SOURCE_DIR) + "/tests/indexer/data/tiny.lsa-indexer.gguf";

// Relative closeness with a floor for values near zero.
bool close(double got, double want, double rel) {
  return std::abs(got - want) <= rel * std::max(1.0, std::abs(want));
}

// An indexer file for the tiny model (width 32, 3 layers), random weights; `edit` changes the spec.
Bytes indexer_bytes(const std::function<void(FileSpec&)>& edit = {}) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  auto tensor = [&](std::string name, std::vector<uint64_t> dims, float bias) {
    uint64_t n = 1;
    for (const uint64_t d : dims) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = bias + u(rng);
    return TensorSpec{std::move(name), 0, std::move(dims), f32_bytes(v), std::nullopt};
  };
  const uint64_t d = 32, h = 2, dh = 8;
  FileSpec spec;
  spec.kvs = {kv_str("general.architecture", "lsa-indexer"),
              kv_int("lsa-indexer.version", kU32, 1),
              kv_int("lsa-indexer.feature_dim", kU32, d),
              kv_int("lsa-indexer.head_count", kU32, h),
              kv_int("lsa-indexer.head_dim", kU32, dh),
              kv("lsa-indexer.norm_eps", kF32, f32_payload(1e-5f)),
              kv("lsa-indexer.logit_offset", kF32, f32_payload(0.1f)),
              kv_int("lsa-indexer.query_tap", kU32, 3),
              kv_int("lsa-indexer.key_tap", kU32, 1),
              kv_int("lsa-indexer.chunk_tokens", kU32, 4),
              kv_int("lsa-indexer.model_layers", kU32, 3),
              kv_str("lsa-indexer.description", "test")};
  spec.tensors = {tensor("key_norm", {d}, 1.0f),        tensor("key_proj", {d, dh}, 0.0f),
                  tensor("query_norm", {d}, 1.0f),      tensor("query_proj", {d, h * dh}, 0.0f),
                  tensor("head_proj", {d, h}, 0.0f),    tensor("head_bias", {h}, 0.5f)};
  if (edit) edit(spec);
  return build(spec).bytes;
}

std::string load_error(const Bytes& bytes) {
  try {
    ld::IndexerFile::from(ld::GgufFile::parse(bytes, "indexer.gguf"));
  } catch (const ld::DecodeError& e) {
    return e.what();
  }
  return "";
}

// Decodes ids[from..] in `session`: each step's logits and the most pages a step's view listed.
std::pair<std::vector<std::vector<float>>, int64_t> decode_rest(ld::Session& session,
                                                                std::span<const int32_t> ids,
                                                                size_t from) {
  std::vector<std::vector<float>> logits;
  int64_t most_pages = 0;
  for (size_t i = from; i < ids.size(); ++i) {
    logits.push_back(session.decode(ids[i]));
    most_pages = std::max<int64_t>(most_pages, static_cast<int64_t>(session.view_pages().size()));
  }
  return {logits, most_pages};
}

}  // namespace

TEST_CASE("learned indexer: keys, queries and scores equal the trainer's forward pass",
          "[indexer][learned]") {
  const auto file = ld::IndexerFile::load(kFixture);
  const lsa::LearnedIndexer& ix = file->indexer();
  const lsa::LearnedIndexerShape& s = ix.shape();
  REQUIRE(s.feature_dim == 40);
  REQUIRE(s.num_heads == 3);
  REQUIRE(s.head_dim == 24);
  CHECK(file->query_tap() == 2);
  CHECK(file->key_tap() == 1);
  const std::vector<float>& chunks = file->extra("test.chunk_features");
  const std::vector<float>& hidden = file->extra("test.query_features");
  const std::vector<float>& want_keys = file->extra("test.keys");
  const std::vector<float>& want_q = file->extra("test.queries");
  const std::vector<float>& want_w = file->extra("test.weights");
  const std::vector<float>& want_scores = file->extra("test.scores");
  const int64_t d = s.feature_dim, dh = s.head_dim, h = s.num_heads;
  const int64_t num_chunks = static_cast<int64_t>(chunks.size()) / d;
  const int64_t num_queries = static_cast<int64_t>(hidden.size()) / d;
  REQUIRE(num_chunks == 7);
  REQUIRE(num_queries == 3);

  for (const lsa::KeyFormat format : {lsa::KeyFormat::kF32, lsa::KeyFormat::kFp8E4M3}) {
    const lsa::LightningScorer scorer(ix.scorer_config(format), 4);
    lsa::LightningScorer::Index index;
    std::vector<std::vector<float>> keys_f32;  // each chunk's key, and what its row decodes to
    std::vector<std::vector<float>> keys_row;
    for (int64_t c = 0; c < num_chunks; ++c) {
      const std::span<const float> pooled(chunks.data() + c * d, static_cast<size_t>(d));
      std::vector<float> k(static_cast<size_t>(dh));
      REQUIRE(ix.key(pooled, k) == lsa::Status::kOk);
      for (int64_t e = 0; e < dh; ++e) {
        CHECK(close(k[static_cast<size_t>(e)], want_keys[static_cast<size_t>(c * dh + e)], 1e-5));
      }
      std::vector<std::byte> row(static_cast<size_t>(lsa::encoded_key_bytes(format, dh)));
      REQUIRE(ix.key_row(pooled, format, row) == lsa::Status::kOk);
      REQUIRE(scorer.check_keys({row.data(), 1}) == lsa::Status::kOk);
      scorer.append(index, {row.data(), 1});
      std::vector<float> decoded(static_cast<size_t>(dh));
      if (format == lsa::KeyFormat::kF32) {
        decoded = k;
      } else {
        float scale;
        std::memcpy(&scale, row.data() + dh, 4);
        for (int64_t e = 0; e < dh; ++e) {
          decoded[static_cast<size_t>(e)] = lsa::decode_fp8_e4m3(static_cast<uint8_t>(row[static_cast<size_t>(e)])) * scale;
        }
      }
      keys_f32.push_back(k);
      keys_row.push_back(decoded);
    }
    for (int64_t r = 0; r < num_queries; ++r) {
      std::vector<float> q(static_cast<size_t>(h * dh)), w(static_cast<size_t>(h));
      REQUIRE(ix.query(std::span<const float>(hidden.data() + r * d, static_cast<size_t>(d)), q, w) ==
              lsa::Status::kOk);
      for (size_t i = 0; i < q.size(); ++i) CHECK(close(q[i], want_q[static_cast<size_t>(r) * q.size() + i], 1e-5));
      for (size_t i = 0; i < w.size(); ++i) CHECK(close(w[i], want_w[static_cast<size_t>(r) * w.size() + i], 1e-5));
      std::vector<float> scores(static_cast<size_t>(num_chunks));
      REQUIRE(scorer.check_query({q, w}) == lsa::Status::kOk);
      scorer.score(index, {q, w}, scores);
      for (int64_t c = 0; c < num_chunks; ++c) {
        const double want = want_scores[static_cast<size_t>(r * num_chunks + c)];
        const double got = scores[static_cast<size_t>(c)];
        INFO("format " << static_cast<int>(format) << " query " << r << " chunk " << c);
        if (format == lsa::KeyFormat::kF32) {
          CHECK(std::abs(got - want) <= 1e-5 * std::abs(want));
        } else {
          // fp8 rows: the logit moves by at most sum_h |w_h| sum_d |q_hd| |k_d - k8_d|, the
          // sigmoid by a quarter of that.
          double bound = 0.0;
          for (int64_t hh = 0; hh < h; ++hh) {
            double per_head = 0.0;
            for (int64_t e = 0; e < dh; ++e) {
              per_head += std::abs(q[static_cast<size_t>(hh * dh + e)]) *
                          std::abs(keys_f32[static_cast<size_t>(c)][static_cast<size_t>(e)] -
                                   keys_row[static_cast<size_t>(c)][static_cast<size_t>(e)]);
            }
            bound += std::abs(w[static_cast<size_t>(hh)]) * per_head;
          }
          CHECK(std::abs(got - want) <= 0.25 * bound + 1e-5 * std::abs(want));
        }
      }
    }
  }
}

TEST_CASE("learned indexer: malformed files get a clear error", "[indexer][learned]") {
  CHECK(load_error(indexer_bytes()).empty());
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.kvs[0] = kv_str("general.architecture", "llama"); })),
             Catch::Contains("not an lsa indexer"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.kvs[1] = kv_int("lsa-indexer.version", kU32, 2); })),
             Catch::Contains("version 2"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.tensors.erase(s.tensors.begin() + 3); })),
             Catch::Contains("query_proj"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.tensors[1].dims = {32, 7}; s.tensors[1].data.resize(32 * 7 * 4); })),
             Catch::Contains("'key_proj' must be F32 with dims [32, 8]"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) {
               s.tensors[5].type = 1;  // F16
               s.tensors[5].data.resize(4);
             })),
             Catch::Contains("'head_bias' must be F32"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) {
               const float nan = NAN;
               std::memcpy(s.tensors[4].data.data(), &nan, 4);
             })),
             Catch::Contains("indexer.head_proj must be finite"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.kvs[7] = kv_int("lsa-indexer.query_tap", kU32, 4); })),
             Catch::Contains("tap layer 4 is outside [0, 3]"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.kvs.erase(s.kvs.begin() + 9); })),
             Catch::Contains("lsa-indexer.chunk_tokens"));
  CHECK_THAT(load_error(indexer_bytes([](FileSpec& s) { s.kvs[2] = kv_int("lsa-indexer.feature_dim", kU32, 0); })),
             Catch::Contains("feature_dim must be in [1,"));

  const Bytes ok = indexer_bytes();
  const auto file = ld::IndexerFile::from(ld::GgufFile::parse(ok, "indexer.gguf"));
  ld::ModelConfig model;
  model.num_layers = 3;
  model.d_model = 32;
  CHECK_NOTHROW(file->check_fits(model, 4));
  CHECK_THROWS_WITH(file->check_fits(model, 16), Catch::Contains("chunks of 4 tokens, not 16"));
  model.d_model = 64;
  CHECK_THROWS_WITH(file->check_fits(model, 4), Catch::Contains("width 32"));
  CHECK_THROWS_AS(ld::IndexerFile::load("/nonexistent/indexer.gguf"), ld::DecodeError);
}

TEST_CASE("learned indexer: a decoding session scores with it, and a covering budget is dense",
          "[indexer][learned]") {
  const tiny_llama::Model tiny;
  const Bytes bytes = indexer_bytes();
  const auto file = ld::IndexerFile::from(ld::GgufFile::parse(bytes, "indexer.gguf"));
  const std::vector<int32_t> ids = tiny_llama::tokens(90, tiny.model.config().vocab_size, 5);
  const ld::ForwardTaps taps = ld::indexer_taps(*file);
  std::vector<ld::TokenState> states;
  tiny.model.prefill(std::span(ids).first(70), states, {}, [](int64_t, std::span<const float>) {}, {}, &taps);

  auto run = [&](bool dense, double budget, int32_t interval) {
    ld::CacheOptions o;
    o.dense = dense;
    o.scorer = ld::ScorerKind::kLearned;
    o.indexer = file;
    o.chunk_tokens = 4;
    o.budget_fraction = budget;
    o.interval = interval;
    o.max_tokens = 100;
    auto session = ld::make_session(tiny.model, o);
    session->append_prefill(states);
    auto [logits, most_pages] = decode_rest(*session, ids, 70);
    return std::make_tuple(logits, most_pages, session->stats());
  };
  const auto [dense, dense_pages, dense_stats] = run(true, 1.0, 8);
  const auto [full, full_pages, full_stats] = run(false, 1.0, 8);
  CHECK(full == dense);  // bit for bit: every page listed
  const auto [sparse, sparse_pages, sparse_stats] = run(false, 0.3, 8);
  CHECK(sparse_pages <= 8);  // kmax = ceil(0.3 * 25 pages)
  CHECK(sparse_stats.refreshes >= 2);
  CHECK(sparse != dense);

  // Prefill states without the taps are refused with a message naming them.
  std::vector<ld::TokenState> bare;
  tiny.model.prefill(std::span(ids).first(70), bare, {}, [](int64_t, std::span<const float>) {});
  ld::CacheOptions o;
  o.scorer = ld::ScorerKind::kLearned;
  o.indexer = file;
  o.chunk_tokens = 4;
  o.max_tokens = 100;
  auto session = ld::make_session(tiny.model, o);
  CHECK_THROWS_WITH(session->append_prefill(bare), Catch::Contains("taps (layers 1 and 3)"));
  o.indexer = nullptr;
  CHECK_THROWS_WITH(ld::make_session(tiny.model, o), Catch::Contains("needs an indexer file"));
}

TEST_CASE(
    "learned indexer: sessions score its chunks over the pages, sink and recent tokens configured",
    "[indexer][learned]") {
  const Bytes bytes = indexer_bytes();  // chunks of 4 tokens
  const auto file = ld::IndexerFile::from(ld::GgufFile::parse(bytes, "indexer.gguf"));
  ld::CacheOptions o;  // chunks of 16 tokens, one per page
  o.sink_chunks = 1;
  o.recent_chunks = 4;
  o.budget_fraction = 0.25;
  const ld::CacheOptions fine = ld::with_chunk_tokens(o, 4);
  CHECK(fine.chunk_tokens == 4);
  CHECK(fine.page_chunks == 4);
  CHECK(fine.sink_chunks == 4);
  CHECK(fine.recent_chunks == 16);
  CHECK(fine.budget_fraction == 0.25);
  CHECK(ld::with_chunk_tokens(fine, 4).page_chunks == 4);
  CHECK(ld::with_chunk_tokens(fine, 16).page_chunks == 1);

  ld::CacheOptions odd = o;
  odd.sink_chunks = 3;
  odd.chunk_tokens = 4;
  odd.page_chunks = 8;
  CHECK_THROWS_WITH(ld::with_chunk_tokens(odd, 8),
                    Catch::Contains("the sink (3 chunk(s) of 4 tokens)"));
  odd.sink_chunks = 2;
  CHECK_NOTHROW(ld::with_chunk_tokens(odd, 8));
  CHECK_THROWS_WITH(ld::with_chunk_tokens(o, 32),
                    Catch::Contains("the page (1 chunk(s) of 16 tokens)"));
  CHECK_THROWS_WITH(ld::with_chunk_tokens(o, 0), Catch::Contains("chunk tokens must be >= 1"));

  // The same pages and budget as the bound scorer's, scored in the indexer's chunks.
  const tiny_llama::Model tiny;
  const ld::ModelConfig& m = tiny.model.config();
  o.max_tokens = 1024;
  const lsa::CacheConfig bound = ld::make_cache_config(m, o);
  ld::CacheOptions learned = fine;
  learned.max_tokens = 1024;
  learned.scorer = ld::ScorerKind::kLearned;
  learned.indexer = file;
  const lsa::CacheConfig c = ld::make_cache_config(m, learned);
  CHECK(c.chunk_tokens == 4);
  CHECK(c.page_chunks * c.chunk_tokens == bound.page_chunks * bound.chunk_tokens);
  CHECK(c.policy.kmax_pages == bound.policy.kmax_pages);
  CHECK(c.num_slots == bound.num_slots);
  o.scorer = ld::ScorerKind::kLearned;  // chunks of 16 handed to a 4-token indexer are refused
  o.indexer = file;
  CHECK_THROWS_WITH(ld::make_cache_config(m, o), Catch::Contains("chunks of 4 tokens, not 16"));

  // lsa-eval's learned methods rechunk its shape; the other methods keep it.
  const ld::CacheOptions eval_learned = ld::cache_options({ld::MethodKind::kLearned, 0.15, 64},
                                                          2048, ld::CacheShape{}, nullptr, file);
  CHECK(eval_learned.chunk_tokens == 4);
  CHECK(eval_learned.page_chunks == 4);
  CHECK(eval_learned.sink_chunks == 4);
  CHECK(eval_learned.recent_chunks == 16);
  const ld::CacheOptions eval_bound = ld::cache_options({ld::MethodKind::kLsa, 0.15, 64}, 2048);
  CHECK(eval_bound.chunk_tokens == 16);
  CHECK(eval_bound.page_chunks == 1);

  // A session over the rechunked options decodes, and every page listed is dense's answer.
  const std::vector<int32_t> ids = tiny_llama::tokens(90, m.vocab_size, 5);
  const ld::ForwardTaps taps = ld::indexer_taps(*file);
  std::vector<ld::TokenState> states;
  tiny.model.prefill(
      std::span(ids).first(70), states, {}, [](int64_t, std::span<const float>) {}, {}, &taps);
  auto run = [&](double budget) {
    ld::CacheOptions s = ld::with_chunk_tokens(ld::CacheOptions{}, 4);
    s.scorer = ld::ScorerKind::kLearned;
    s.indexer = file;
    s.budget_fraction = budget;
    s.interval = 8;
    s.max_tokens = 100;
    auto session = ld::make_session(tiny.model, s);
    session->append_prefill(states);
    return decode_rest(*session, ids, 70);
  };
  ld::CacheOptions dense_options;
  dense_options.dense = true;
  dense_options.max_tokens = 100;
  auto dense = ld::make_session(tiny.model, dense_options);
  dense->append_prefill(states);
  const std::vector<std::vector<float>> want = decode_rest(*dense, ids, 70).first;
  CHECK(run(1.0).first == want);
  const auto [sparse, pages] = run(0.5);
  CHECK(pages <= 4);  // ceil(0.5 * 7 pages of 16 tokens)
  CHECK(sparse != want);
}
