// A deliberately plain model of what a cache must hold: every token's KV bytes, every chunk's index
// key and the identity of every logical page (forks share full pages), per sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "lsa/types.hpp"

namespace lsa::testing {

/// One sequence of the reference model.
struct RefSequence {
  std::vector<std::vector<std::byte>> tokens;  ///< [token][num_layers * bytes_per_token_per_layer]
  std::vector<float> chunk_keys;               ///< one GivenScoreScorer key per completed chunk
  std::vector<uint64_t> page_uid;              ///< identity of each logical page; forks share full pages
  int64_t committed = 0;                       ///< tokens the cache has been told are written
  int64_t surely_committed = 0;  ///< the same, not counting failed calls that may have committed

  /// Tokens in the sequence.
  int64_t length() const { return static_cast<int64_t>(tokens.size()); }
};

/// Sequences by id; each operation mirrors the cache call of the same name on success.
class RefModel {
 public:
  /// `page_tokens` and `chunk_tokens` as in the cache configuration.
  RefModel(int64_t page_tokens, int64_t chunk_tokens)
      : page_tokens_(page_tokens), chunk_tokens_(chunk_tokens) {}

  /// Live sequences.
  std::map<SeqId, RefSequence> seqs;

  /// Pages of an n-token history.
  int64_t num_pages(int64_t n) const { return (n + page_tokens_ - 1) / page_tokens_; }

  void add(SeqId id) { seqs[id] = RefSequence{}; }

  void append(SeqId id, std::vector<std::vector<std::byte>> tokens, std::span<const float> keys,
              bool committed) {
    RefSequence& r = seqs.at(id);
    r.committed = r.surely_committed = r.length();  // an append commits what came before it
    for (auto& t : tokens) r.tokens.push_back(std::move(t));
    r.chunk_keys.insert(r.chunk_keys.end(), keys.begin(), keys.end());
    while (static_cast<int64_t>(r.page_uid.size()) < num_pages(r.length())) {
      r.page_uid.push_back(next_uid_++);
    }
    if (committed) r.committed = r.surely_committed = r.length();
  }

  void commit(SeqId id) {
    RefSequence& r = seqs.at(id);
    r.committed = r.surely_committed = r.length();
  }

  void truncate(SeqId id, int64_t n) {
    RefSequence& r = seqs.at(id);
    r.tokens.resize(static_cast<size_t>(n));
    r.chunk_keys.resize(static_cast<size_t>(n / chunk_tokens_));
    r.page_uid.resize(static_cast<size_t>(num_pages(n)));
    // A partial last page becomes private (it will be written again).
    if (n % page_tokens_ != 0) r.page_uid.back() = next_uid_++;
    r.committed = r.surely_committed = n;
  }

  void fork(SeqId src, SeqId dst) {
    RefSequence& parent = seqs.at(src);
    parent.committed = parent.surely_committed = parent.length();
    RefSequence child = parent;
    if (child.length() % page_tokens_ != 0) child.page_uid.back() = next_uid_++;
    seqs[dst] = std::move(child);
  }

  void remove(SeqId id) { seqs.erase(id); }

 private:
  int64_t page_tokens_;
  int64_t chunk_tokens_;
  uint64_t next_uid_ = 1;
};

}  // namespace lsa::testing
