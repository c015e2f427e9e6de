#include "session.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "error.hpp"
#include "kernels.hpp"
#include "random_scorer.hpp"
#include "recency_scorer.hpp"

namespace lsa_decode {
namespace {

void check(lsa::Status s, const char* what) {
  if (!lsa::ok(s)) throw DecodeError(fmt::format("lsa {} failed: {}", what, lsa::to_string(s)));
}

// What a token-granular scorer reads: every token's keys (TokenState::key) and, at a refresh,
// the model's own query of the token before it.
class ModelKeys {
 public:
  explicit ModelKeys(const CacheOptions&) {}
  const ForwardTaps* taps() const { return nullptr; }
  // Rows for states [0, n) of a piece whose first token is at `position`.
  lsa::KeyRows rows(std::span<const TokenState> states, int64_t /*position*/) {
    const size_t bytes = states.empty() ? 0 : states[0].key.size() * sizeof(float);
    buffer_.resize(states.size() * bytes);
    for (size_t i = 0; i < states.size(); ++i) std::memcpy(buffer_.data() + i * bytes, states[i].key.data(), bytes);
    return {buffer_.data(), static_cast<int64_t>(states.size())};
  }
  // The query of a refresh after `state`'s token.
  lsa::Query query(const TokenState& state) {
    query_ = state.query;
    return {query_, {}};
  }

 private:
  std::vector<std::byte> buffer_;
  std::vector<float> query_;
};

// What LightningScorer reads from a learned indexer: one key row per completed chunk (its states
// at the key tap pooled), and the indexer's query and head weights from the state of the token
// before a refresh (at the query tap). States carry the taps in indexer_taps() order.
class LearnedKeys {
 public:
  explicit LearnedKeys(const CacheOptions& o)
      : file_(o.indexer), format_(o.indexer_keys), chunk_tokens_(o.chunk_tokens) {
    taps_ = indexer_taps(*file_);
    const lsa::LearnedIndexerShape& shape = file_->indexer().shape();
    sum_.assign(static_cast<size_t>(shape.feature_dim), 0.0);
    pooled_.resize(sum_.size());
    row_bytes_ = lsa::encoded_key_bytes(format_, shape.head_dim);
    q_.resize(static_cast<size_t>(shape.num_heads * shape.head_dim));
    w_.resize(static_cast<size_t>(shape.num_heads));
  }
  const ForwardTaps* taps() const { return &taps_; }
  lsa::KeyRows rows(std::span<const TokenState> states, int64_t position) {
    buffer_.clear();
    int64_t rows = 0;
    const size_t d = sum_.size();
    for (const TokenState& s : states) {
      if (s.hidden.size() != 2 * d) {
        throw DecodeError(fmt::format("the learned indexer needs the states' taps (layers {} and {}); got {} "
                                      "floats of hidden state per token",
                                      taps_.hidden_layers[0], taps_.hidden_layers[1], s.hidden.size()));
      }
      for (size_t e = 0; e < d; ++e) sum_[e] += s.hidden[e];
      if (++position % chunk_tokens_ != 0) continue;
      for (size_t e = 0; e < d; ++e) pooled_[e] = static_cast<float>(sum_[e] / chunk_tokens_);
      std::fill(sum_.begin(), sum_.end(), 0.0);
      buffer_.resize(static_cast<size_t>((rows + 1) * row_bytes_));
      check(file_->indexer().key_row(pooled_, format_,
                                     std::span<std::byte>(buffer_).subspan(static_cast<size_t>(rows * row_bytes_))),
            "indexer key");
      ++rows;
    }
    return {buffer_.data(), rows};
  }
  lsa::Query query(const TokenState& state) {
    const size_t d = sum_.size();
    check(file_->indexer().query(std::span<const float>(state.hidden).subspan(d, d), q_, w_), "indexer query");
    return {q_, w_};
  }

 private:
  std::shared_ptr<const IndexerFile> file_;
  lsa::KeyFormat format_;
  int64_t chunk_tokens_;
  ForwardTaps taps_;
  std::vector<double> sum_;  // the current chunk's key-tap states, summed
  std::vector<float> pooled_, q_, w_;
  int64_t row_bytes_ = 0;
  std::vector<std::byte> buffer_;
};

template <class Scorer, class Keys = ModelKeys>
class CacheSession final : public Session {
 public:
  CacheSession(const LlamaModel& model, const lsa::CacheConfig& config, const CacheOptions& options)
      : model_(model),
        current_query_(options.current_query),
        kv_type_(options.kv),
        record_(options.record_attention),
        oracle_(options.oracle),
        keys_(options),
        cache_(config),
        view_(1, config.policy.kmax_pages,
              static_cast<int32_t>(config.max_tokens / config.page_tokens() + 1)),
        where_(static_cast<size_t>(config.page_tokens())) {
    const lsa::Status s = cache_.add(kId);
    check(s, "add");
  }

  void append_prefill(std::span<const TokenState> states) override {
    const int64_t piece = cache_.config().page_tokens();
    for (size_t first = 0; first < states.size(); first += static_cast<size_t>(piece)) {
      const auto n = static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(piece), states.size() - first));
      for (int32_t i = 0; i < n; ++i) store_kv(states[first + i], i);
      const lsa::KeyRows rows = keys_.rows(states.subspan(first, static_cast<size_t>(n)), cache_.length(kId));
      where_.resize(static_cast<size_t>(n));
      check(cache_.append(kId, n, rows, where_, kv_.data()), "append (prefill)");
    }
    if (!states.empty()) query_ = keys_.query(states.back());
  }

  const std::vector<float>& decode(int32_t token) override {
    attend(token, query_);
    if (current_query_ && cache_.refresh_due(kId)) {
      // Quest-style: select again with this token's own query, then attend to that selection.
      attend(token, keys_.query(state_));
    }
    const int64_t position = cache_.length(kId);
    where_.resize(1);
    store_kv(state_, 0);
    check(cache_.append(kId, 1, keys_.rows(std::span<const TokenState>(&state_, 1), position),
                        where_, kv_.data()),
          "append (decode)");
    query_ = keys_.query(state_);
    ++steps_;
    return logits_;
  }

  int64_t length() const override { return cache_.length(kId); }
  int64_t steps() const override { return steps_; }
  std::span<const int32_t> view_pages() const override { return view_pages_; }
  const AttentionMass& last_attention() const override { return attention_; }
  lsa::Stats stats() const override { return cache_.stats(); }
  const lsa::CacheConfig& cache_config() const override { return cache_.config(); }

 private:
  // Token `i` of the piece kv_ stages for an append: `state`'s K and V in the page's type.
  void store_kv(const TokenState& state, int32_t i) {
    const int64_t n = static_cast<int64_t>(state.kv.size());
    const int64_t bytes = n * kv_element_bytes(kv_type_);
    kv_.resize(static_cast<size_t>((i + 1) * bytes));
    std::byte* out = kv_.data() + i * bytes;
    if (kv_type_ == KvType::kF16) {
      to_f16(state.kv.data(), reinterpret_cast<hwy::float16_t*>(out), n);
    } else {
      std::memcpy(out, state.kv.data(), static_cast<size_t>(bytes));
    }
  }

  // One step (refreshing with `query` when due) and the model's decode over the view's pages.
  void attend(int32_t token, lsa::Query query) {
    const lsa::SeqId batch[1] = {kId};
    std::array<lsa::Query, 1> queries{query};
    const bool due = cache_.refresh_due(kId);
    if (due && oracle_ != nullptr) queries[0].weights = oracle_chunk_scores();
    check(cache_.step(batch, due ? std::span<const lsa::Query>(queries) : std::span<const lsa::Query>{},
                      view_.buffers()),
          "step");
    const int64_t page_tokens = cache_.config().page_tokens();
    const int32_t begin = view_.indptr[0], end = view_.indptr[1];
    pages_.clear();
    for (int32_t i = begin; i < end; ++i) {
      const bool tail = i == end - 1;
      pages_.push_back({cache_.store().slot_data(view_.indices[i]),
                        tail ? view_.last_page_len[0] : static_cast<int32_t>(page_tokens)});
    }
    // The view lists the resident set's slots in logical page order (sync recall: no set in
    // flight), so page i of the view is resident_pages()[i].
    const std::span<const int32_t> resident = cache_.resident_pages(kId);
    if (resident.size() != pages_.size()) {
      throw DecodeError(fmt::format("lsa view lists {} pages but the resident set has {}",
                                    pages_.size(), resident.size()));
    }
    view_pages_.assign(resident.begin(), resident.end());
    const int64_t pos = cache_.length(kId);
    model_.decode(token, pos, pages_, page_tokens, kv_type_, state_, logits_,
                  record_ ? &attention_ : nullptr, keys_.taps());
  }

  // The oracle's query weights: the future mass of each page, spread over its chunks.
  std::span<const float> oracle_chunk_scores() {
    const lsa::CacheConfig& c = cache_.config();
    const int64_t tokens = cache_.length(kId);
    page_mass_.assign(static_cast<size_t>((tokens + c.page_tokens() - 1) / c.page_tokens()), 0.0f);
    oracle_->add_page_mass(steps_, c.policy.interval, page_mass_);
    chunk_scores_from_page_mass(page_mass_, c.page_chunks, (tokens + c.chunk_tokens - 1) / c.chunk_tokens,
                                chunk_scores_);
    return chunk_scores_;
  }

  static constexpr lsa::SeqId kId = 1;
  const LlamaModel& model_;
  const bool current_query_;
  const KvType kv_type_;
  const bool record_;
  const std::shared_ptr<const FutureAttention> oracle_;
  Keys keys_;
  lsa::Query query_;  // the next refresh's query (views into keys_)
  std::vector<float> page_mass_, chunk_scores_;  // oracle refresh scratch
  int64_t steps_ = 0;
  std::vector<int32_t> view_pages_;
  AttentionMass attention_;
  lsa::SparseKVCache<lsa::Chunker, Scorer> cache_;
  lsa::ViewStorage view_;
  std::vector<lsa::TokenSlot> where_;
  std::vector<std::byte> kv_;  // K and V of the tokens of the next append, in the page's type
  std::vector<KvPage> pages_;
  TokenState state_;
  std::vector<float> logits_;
};

}  // namespace

ForwardTaps indexer_taps(const IndexerFile& indexer) {
  ForwardTaps taps;
  taps.hidden_layers = {indexer.key_tap(), indexer.query_tap()};
  return taps;
}

ScorerKind parse_scorer(const std::string& name) {
  if (name == "bound") return ScorerKind::kBound;
  if (name == "centroid") return ScorerKind::kCentroid;
  if (name == "learned") return ScorerKind::kLearned;
  if (name == "random") return ScorerKind::kRandom;
  if (name == "recency") return ScorerKind::kRecency;
  throw DecodeError(
      fmt::format("--scorer must be 'bound', 'centroid', 'learned', 'random' or 'recency' (got '{}')", name));
}

KvType parse_kv_type(const std::string& name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  throw DecodeError(fmt::format("--kv must be 'f32' or 'f16' (got '{}')", name));
}

const char* kv_name(KvType type) { return type == KvType::kF16 ? "f16" : "f32"; }

CacheOptions with_chunk_tokens(CacheOptions o, int32_t chunk_tokens) {
  if (chunk_tokens < 1)
    throw DecodeError(fmt::format("chunk tokens must be >= 1 (got {})", chunk_tokens));
  if (chunk_tokens == o.chunk_tokens) return o;
  const auto rechunk = [&](int64_t chunks, const char* what) {
    const int64_t tokens = chunks * o.chunk_tokens;
    if (tokens % chunk_tokens != 0 || tokens / chunk_tokens > (int64_t{1} << 30)) {
      throw DecodeError(
          fmt::format("the {} ({} chunk(s) of {} tokens) is not a whole number of the indexer's "
                      "{}-token chunks",
                      what, chunks, o.chunk_tokens, chunk_tokens));
    }
    return static_cast<int32_t>(tokens / chunk_tokens);
  };
  const int32_t page_chunks = rechunk(o.page_chunks, "page");
  const int32_t sink_chunks = rechunk(o.sink_chunks, "sink");
  const int32_t recent_chunks = rechunk(o.recent_chunks, "recent span");
  o.page_chunks = page_chunks;
  o.sink_chunks = sink_chunks;
  o.recent_chunks = recent_chunks;
  o.chunk_tokens = chunk_tokens;
  return o;
}

lsa::CacheConfig make_cache_config(const ModelConfig& m, const CacheOptions& o) {
  if (o.max_tokens < 1) throw DecodeError(fmt::format("max tokens must be >= 1 (got {})", o.max_tokens));
  if (o.current_query && o.interval != 1) {
    throw DecodeError(fmt::format(
        "current-query (Quest-style) selection refreshes every step: it needs interval 1 (got {})",
        o.interval));
  }
  lsa::CacheConfig c;
  c.num_layers = m.num_layers;
  c.bytes_per_token_per_layer = m.kv_floats() * kv_element_bytes(o.kv);
  c.chunk_tokens = o.chunk_tokens;
  c.page_chunks = o.page_chunks;
  c.max_sequences = 1;
  c.max_tokens = o.max_tokens;
  c.recall_mode = lsa::RecallMode::kSync;
  lsa::PolicyConfig& p = c.policy;
  p.interval = o.interval;
  p.spread_phase = false;
  p.sink_chunks = o.sink_chunks;
  p.recent_chunks = o.recent_chunks;
  p.selection = lsa::Selection::kTopK;
  p.page_score = lsa::PageScore::kScoreMass;
  const int64_t page_tokens = int64_t{o.chunk_tokens} * o.page_chunks;
  if (o.chunk_tokens < 1 || o.page_chunks < 1) {
    throw DecodeError(fmt::format("--chunk-tokens and --page-chunks must be >= 1 (got {} and {})",
                                  o.chunk_tokens, o.page_chunks));
  }
  const int64_t max_pages = (o.max_tokens + page_tokens - 1) / page_tokens;
  const int64_t forced = lsa::Chunker(o.chunk_tokens, o.page_chunks).max_forced_pages(o.sink_chunks, o.recent_chunks);
  int64_t kmax = max_pages;
  if (!o.dense) {
    if (o.budget_pages > 0) {
      kmax = o.budget_pages;
    } else if (o.budget_fraction > 0.0 && o.budget_fraction <= 1.0) {
      kmax = static_cast<int64_t>(std::ceil(o.budget_fraction * static_cast<double>(max_pages)));
    } else {
      throw DecodeError(fmt::format("--budget must be a fraction in (0, 1] or a page count (got {})",
                                    o.budget_fraction));
    }
    if (kmax < forced) {
      throw DecodeError(fmt::format(
          "--budget gives {} pages, fewer than the {} pages sink, recent and tail force; raise it",
          kmax, forced));
    }
  }
  p.kmax_pages = static_cast<int32_t>(std::max(std::min(kmax, max_pages), forced));
  p.top_k_chunks = std::max<int32_t>(1, p.kmax_pages * o.page_chunks);
  c.num_slots = p.kmax_pages;
  lsa::ScorerConfig& s = c.scorer;
  s.num_layers = m.num_layers;
  s.num_heads = m.num_heads;
  s.num_key_heads = m.num_kv_heads;
  s.head_dim = m.head_dim;
  s.key_format = lsa::KeyFormat::kF32;
  s.ensemble = lsa::Ensemble::kMean;
  if (o.scorer == ScorerKind::kLearned) {
    if (o.indexer == nullptr) throw DecodeError("the learned scorer needs an indexer file (--indexer)");
    o.indexer->check_fits(m, o.chunk_tokens);
    s = o.indexer->indexer().scorer_config(o.indexer_keys);
  }
  lsa::validate(c);
  return c;
}

std::unique_ptr<Session> make_session(const LlamaModel& model, const CacheOptions& options) {
  const lsa::CacheConfig config = make_cache_config(model.config(), options);
  if ((options.scorer == ScorerKind::kOracle) != (options.oracle != nullptr)) {
    throw DecodeError("the oracle scorer needs the reference run's attention, and only it reads it");
  }
  switch (options.scorer) {
    case ScorerKind::kCentroid:
      return std::make_unique<CacheSession<lsa::CentroidScorer>>(model, config, options);
    case ScorerKind::kRandom:
      return std::make_unique<CacheSession<RandomScorer>>(model, config, options);
    case ScorerKind::kRecency:
      return std::make_unique<CacheSession<RecencyScorer>>(model, config, options);
    case ScorerKind::kOracle:
      return std::make_unique<CacheSession<OracleScorer>>(model, config, options);
    case ScorerKind::kLearned:
      return std::make_unique<CacheSession<lsa::LightningScorer, LearnedKeys>>(model, config, options);
    case ScorerKind::kBound:
      break;
  }
  return std::make_unique<CacheSession<lsa::BoundScorer>>(model, config, options);
}

}  // namespace lsa_decode
