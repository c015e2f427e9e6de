// One decoding sequence whose KV cache is an lsa::SparseKVCache: dense prefill states go in page
// by page, every decode step asks lsa for the view and attends only to the pages listed in it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <lsa/lsa.hpp>

#include "indexer_file.hpp"
#include "model.hpp"
#include "oracle_scorer.hpp"

namespace lsa_decode {

/// Which lsa scorer ranks chunks: a query-aware one summarizing the model's keys (bound,
/// centroid), the learned lookahead indexer (lsa::LightningScorer over an IndexerFile's rows), a
/// baseline (random draws, recency) from random_scorer.hpp / recency_scorer.hpp, or the oracle
/// (oracle_scorer.hpp), which is told the reference run's future attention.
enum class ScorerKind { kBound, kCentroid, kLearned, kRandom, kRecency, kOracle };

/// How the KV cache of a session is configured.
struct CacheOptions {
  bool dense = false;             ///< every page resident (kmax covers max_tokens)
  double budget_fraction = 0.10;  ///< kmax as a fraction of the pages of max_tokens ...
  int32_t budget_pages = 0;       ///< ... or as a page count when > 0
  int32_t chunk_tokens = 16;
  int32_t page_chunks = 1;
  int32_t interval = 64;          ///< decode steps between refreshes
  int32_t sink_chunks = 1;        ///< always resident, part of the budget
  int32_t recent_chunks = 1;      ///< always resident, part of the budget
  ScorerKind scorer = ScorerKind::kBound;
  int64_t max_tokens = 8192;      ///< context capacity (prompt + generated)
  KvType kv = KvType::kF32;  ///< how pages store K and V (f16: half the bytes read and recalled)
  /// Quest-style selection with the current token's query (needs interval 1): a first pass over
  /// the previous step's pages computes this token's queries, the refresh scores with them, and a
  /// second pass attends to the new pages. Twice the decode work; default: the previous token's.
  bool current_query = false;
  /// kOracle: the reference run's attention; a refresh at decode step k scores each chunk with
  /// the mass of steps [k, k + interval) on its page (shared by the page's chunks).
  std::shared_ptr<const FutureAttention> oracle;
  /// Each decode step records where its attention went (Session::last_attention).
  bool record_attention = false;
  /// kLearned: the indexer, and the format of the key rows it hands LightningScorer.
  std::shared_ptr<const IndexerFile> indexer;
  lsa::KeyFormat indexer_keys = lsa::KeyFormat::kFp8E4M3;
};

/// The forward-pass taps a learned indexer reads: the states entering its key tap, then its query
/// tap (TokenState::hidden in this order). Prefill states handed to a kLearned session must carry
/// them.
ForwardTaps indexer_taps(const IndexerFile& indexer);

/// Parses "bound" / "centroid" / "learned" / "random" / "recency" (the oracle needs a reference
/// run, so it is not a command-line scorer); throws DecodeError naming the value otherwise.
ScorerKind parse_scorer(const std::string& name);

/// Parses "f32" / "f16"; throws DecodeError naming the value otherwise.
KvType parse_kv_type(const std::string& name);
/// "f32" / "f16".
const char* kv_name(KvType type);

/// `o` cut into chunks of `chunk_tokens` tokens that span the same pages, sink and recent tokens:
/// a learned indexer scores chunks of the size it was trained on, while the pages (and so the
/// budget and what attention reads) stay as configured. Throws DecodeError naming the span that is
/// not a whole number of such chunks.
CacheOptions with_chunk_tokens(CacheOptions o, int32_t chunk_tokens);

/// The lsa configuration these options give for `model` (kmax, slots, scorer shapes).
lsa::CacheConfig make_cache_config(const ModelConfig& model, const CacheOptions& options);

class Session {
 public:
  virtual ~Session() = default;

  /// Appends tokens whose states a dense prefill computed, and remembers the last token's query
  /// for the first refresh.
  virtual void append_prefill(std::span<const TokenState> states) = 0;
  /// Decodes `token` at the next position: step (refresh when due) -> attention over the view ->
  /// append. Returns the logits of the next token.
  virtual const std::vector<float>& decode(int32_t token) = 0;

  virtual int64_t length() const = 0;
  /// decode() calls so far.
  virtual int64_t steps() const = 0;
  /// Logical pages the last decode step attended to, ascending (its own token aside).
  virtual std::span<const int32_t> view_pages() const = 0;
  /// Where the last decode step's attention went; page i is view_pages()[i]. Empty unless the
  /// session records attention (CacheOptions::record_attention).
  virtual const AttentionMass& last_attention() const = 0;
  virtual lsa::Stats stats() const = 0;
  virtual const lsa::CacheConfig& cache_config() const = 0;
};

/// A session on `model` (which must outlive it).
std::unique_ptr<Session> make_session(const LlamaModel& model, const CacheOptions& options);

}  // namespace lsa_decode
