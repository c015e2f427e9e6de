// A text tokenized once, one piece per line, from which long contexts are cut: the eval tasks'
// haystacks and the indexer's training documents.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lsa_decode {

class Tokenizer;

/// The haystack text, tokenized once: one piece per non-empty line of the file (a verse of
/// Genesis from scripts/genesis.sh), each encoded with a leading space so pieces concatenate as
/// running text.
class Haystack {
 public:
  /// Reads and tokenizes `path`; throws DecodeError when it cannot be read or has no text.
  Haystack(const Tokenizer& tokenizer, const std::string& path);

  /// Number of pieces (lines).
  int64_t num_pieces() const { return static_cast<int64_t>(pieces_.size()); }
  /// Tokens of piece i.
  const std::vector<int32_t>& piece(int64_t i) const { return pieces_[static_cast<size_t>(i)]; }
  /// Tokens of all pieces.
  int64_t num_tokens() const { return num_tokens_; }
  /// The first `n` tokens of the text from piece `first` on (wrapping around to piece 0), and in
  /// `boundaries` the offsets where pieces start (0 first, `n` last).
  std::vector<int32_t> tokens(int64_t first, int64_t n,
                              std::vector<int64_t>* boundaries = nullptr) const;

 private:
  std::vector<std::vector<int32_t>> pieces_;
  int64_t num_tokens_ = 0;
};

}  // namespace lsa_decode
