// Token -> chunk -> page arithmetic with fixed chunk and page sizes.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>

namespace lsa {

/// Fixed-size chunking: `chunk_tokens` tokens per chunk, `page_chunks` chunks per page.
class Chunker {
 public:
  /// Sizes must be >= 1 (CacheConfig validation checks them).
  constexpr Chunker(int32_t chunk_tokens, int32_t page_chunks) noexcept
      : chunk_tokens_(chunk_tokens), page_chunks_(page_chunks) {}

  /// Tokens per chunk.
  constexpr int32_t chunk_tokens() const noexcept { return chunk_tokens_; }
  /// Chunks per page.
  constexpr int32_t page_chunks() const noexcept { return page_chunks_; }
  /// Tokens per page.
  constexpr int64_t page_tokens() const noexcept { return int64_t{chunk_tokens_} * page_chunks_; }

  /// Chunk holding token `t`.
  constexpr int64_t chunk_of_token(int64_t t) const noexcept { return t / chunk_tokens_; }
  /// Page holding chunk `c`.
  constexpr int64_t page_of_chunk(int64_t c) const noexcept { return c / page_chunks_; }
  /// Page holding token `t`.
  constexpr int64_t page_of_token(int64_t t) const noexcept { return t / page_tokens(); }
  /// Token offset of `t` inside its page.
  constexpr int32_t offset_in_page(int64_t t) const noexcept {
    return static_cast<int32_t>(t % page_tokens());
  }
  /// Chunks touched by `n` tokens (the last one may be partial).
  constexpr int64_t num_chunks(int64_t n) const noexcept {
    return (n + chunk_tokens_ - 1) / chunk_tokens_;
  }
  /// Chunks fully filled by `n` tokens.
  constexpr int64_t num_full_chunks(int64_t n) const noexcept { return n / chunk_tokens_; }
  /// Pages touched by `n` tokens (the last one may be partial).
  constexpr int64_t num_pages(int64_t n) const noexcept {
    return (n + page_tokens() - 1) / page_tokens();
  }
  /// Tokens in the last page of an `n`-token history (0 when n == 0).
  constexpr int32_t last_page_len(int64_t n) const noexcept {
    return n == 0 ? 0 : static_cast<int32_t>(n - (num_pages(n) - 1) * page_tokens());
  }

  /// Most pages that `sink` first chunks, `recent` last chunks and the tail page can cover.
  constexpr int64_t max_forced_pages(int64_t sink, int64_t recent) const noexcept {
    const int64_t sink_pages = (sink + page_chunks_ - 1) / page_chunks_;
    const int64_t recent_pages = recent == 0 ? 0 : (recent + page_chunks_ - 1) / page_chunks_ + 1;
    return sink_pages + std::max<int64_t>(recent_pages, 1);
  }

 private:
  int32_t chunk_tokens_;
  int32_t page_chunks_;
};

/// A Chunker maps tokens to chunks and chunks to pages.
template <class C>
concept ChunkerLike = requires(const C& c, int64_t n) {
  { c.page_tokens() } -> std::same_as<int64_t>;
  { c.chunk_of_token(n) } -> std::same_as<int64_t>;
  { c.page_of_chunk(n) } -> std::same_as<int64_t>;
  { c.page_of_token(n) } -> std::same_as<int64_t>;
  { c.offset_in_page(n) } -> std::same_as<int32_t>;
  { c.num_chunks(n) } -> std::same_as<int64_t>;
  { c.num_full_chunks(n) } -> std::same_as<int64_t>;
  { c.num_pages(n) } -> std::same_as<int64_t>;
  { c.last_page_len(n) } -> std::same_as<int32_t>;
  { c.max_forced_pages(n, n) } -> std::same_as<int64_t>;
};

}  // namespace lsa
