// Scores -> kept chunks -> page scores: the selection arithmetic of the lookahead policy.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "lsa/policy_config.hpp"

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#endif

namespace lsa::detail {

/// Reusable buffers for one refresh; grown at refresh time, never on the per-step path.
struct SelectionScratch {
  std::vector<float> page_score;   ///< per logical page
  std::vector<uint8_t> kept;       ///< per chunk, 1 when kept
  std::vector<int64_t> order;      ///< chunk indices being ranked (top-p)
  std::vector<uint32_t> keys;      ///< rank keys of the elements being ranked
  std::vector<int32_t> ids;        ///< ranking output (and radix buffer)
  std::vector<uint32_t> tmp_keys;  ///< radix buffers
  std::vector<int32_t> tmp_ids;    ///< radix buffers
  std::vector<uint32_t> tie_keys;  ///< the boundary bucket of a ranking
  std::vector<float> count_value;  ///< page score of each kept-chunk count
};

/// Strict "better than" on (score desc, index asc): the deterministic tie rule.
inline bool better(float sa, int64_t a, float sb, int64_t b) noexcept {
  return sa > sb || (sa == sb && a < b);
}

/// Integer key with the order of `better` on scores: rank_key(a) < rank_key(b) exactly when a > b,
/// equal when a == b (-0 ranks as +0). Ranking by (key, index) ascending is the tie rule above
/// without a float compare. Never 0xFFFFFFFF for a non-NaN score.
inline uint32_t rank_key(float score) noexcept {
  // Branch-free so that loops over it vectorize: zero the sign of -0, then flip the magnitude bits
  // of non-negative scores (larger score -> smaller key; negatives keep their bits and sort after).
  uint32_t bits = std::bit_cast<uint32_t>(score);
  bits &= 0u - static_cast<uint32_t>((bits << 1) != 0);
  const uint32_t negative = 0u - (bits >> 31);
  return bits ^ (~negative >> 1);
}

/// Rank key of an element that must never be chosen: after every non-NaN score.
inline constexpr uint32_t kUnrankedKey = 0xFFFFFFFFu;

/// Radix digits of a 32-bit key, most significant first: 11, 11 and 10 bits.
inline constexpr int kDigitShift[3] = {21, 10, 0};
inline constexpr uint32_t kDigitBins[3] = {2048, 2048, 1024};

/// hist[0, bins) = how many of keys[0, n) have each digit value (4 tables, so that runs of equal
/// digits do not serialize on one counter).
inline void digit_histogram(const uint32_t* keys, int64_t n, int shift, uint32_t bins,
                            int64_t* hist) {
  std::array<std::array<int32_t, 2048>, 4> part;
  for (auto& table : part) std::fill(table.begin(), table.begin() + bins, 0);
  const uint32_t mask = bins - 1;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++part[0][(keys[i] >> shift) & mask];
    ++part[1][(keys[i + 1] >> shift) & mask];
    ++part[2][(keys[i + 2] >> shift) & mask];
    ++part[3][(keys[i + 3] >> shift) & mask];
  }
  for (; i < n; ++i) ++part[0][(keys[i] >> shift) & mask];
  for (uint32_t b = 0; b < bins; ++b) {
    hist[b] = int64_t{part[0][b]} + part[1][b] + part[2][b] + part[3][b];
  }
}

/// The first k elements in (key, position) order: every key < below, then the first
/// `equal_taken` elements (lowest positions) whose key is `equal`.
struct RankCut {
  uint64_t below = 0;       ///< keys strictly below this are all taken
  uint32_t equal = 0;       ///< the boundary key
  int64_t equal_taken = 0;  ///< how many elements with the boundary key are taken
};

/// Radix select over 32-bit keys; 0 < k < keys.size(). After each digit only the boundary bucket
/// is kept (copied into `tmp`), so this is about two passes over the keys.
inline RankCut rank_cut(std::span<const uint32_t> keys, int64_t k, std::vector<uint32_t>& tmp) {
  std::array<int64_t, 2048> hist;
  tmp.resize(keys.size());
  const uint32_t* cur = keys.data();
  int64_t n = static_cast<int64_t>(keys.size());
  int64_t need = k;
  uint32_t prefix = 0;
  for (int level = 0; level < 3; ++level) {
    const int shift = kDigitShift[level];
    const uint32_t mask = kDigitBins[level] - 1;
    digit_histogram(cur, n, shift, kDigitBins[level], hist.data());
    uint32_t d = 0;
    while (need > hist[d]) need -= hist[d++];
    prefix |= d << shift;
    if (need == hist[d]) return {uint64_t{prefix} + (uint64_t{1} << shift), 0, 0};
    if (level == 2) break;
    // Keep the boundary bucket (in place once cur is tmp: the write index never passes the read).
    uint32_t* dst = tmp.data();
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = cur[i];
      dst[m] = key;
      m += ((key >> shift) & mask) == d ? 1 : 0;
    }
    cur = dst;
    n = m;
    // A bucket of one key (ties: counts as page scores) needs no further digits.
    const auto [lo, hi] = std::minmax_element(cur, cur + n);
    if (*lo == *hi) return {*lo, *lo, need};
  }
  return {prefix, prefix, need};
}

/// Stable LSD radix sort of (keys, ids)[0, n) by key, using alt_* as the other buffers; digits that
/// every element shares are skipped. Returns the buffer pair holding the result.
inline std::pair<uint32_t*, int32_t*> radix_sort_by_key(uint32_t* keys, int32_t* ids,
                                                        uint32_t* alt_keys, int32_t* alt_ids,
                                                        int64_t n) {
  if (n < 2) return {keys, ids};
  std::array<std::array<int32_t, 2048>, 3> hist{};
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t key = keys[i];
    ++hist[0][key >> 21];
    ++hist[1][(key >> 10) & 2047u];
    ++hist[2][key & 1023u];
  }
  for (int level = 2; level >= 0; --level) {  // least significant digit first
    const int shift = kDigitShift[level];
    const uint32_t mask = kDigitBins[level] - 1;
    std::array<int32_t, 2048>& h = hist[level];
    if (h[(keys[0] >> shift) & mask] == n) continue;
    int32_t sum = 0;
    for (uint32_t b = 0; b < kDigitBins[level]; ++b) {
      const int32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = keys[i];
      const int32_t at = h[(key >> shift) & mask]++;
      alt_keys[at] = key;
      alt_ids[at] = ids[i];
    }
    std::swap(keys, alt_keys);
    std::swap(ids, alt_ids);
  }
  return {keys, ids};
}

/// Stable sort by key of (keys, ids)[0, m) into (out_keys, out_ids), given how many keys have each
/// top digit (`top_count`, digits [0, top_bins)): one scatter by the top digit, then each bucket
/// that holds more than one key value is sorted on its own (rare for kept-chunk counts).
inline void sort_by_key_top_first(uint32_t* keys, int32_t* ids, int64_t m, const int64_t* top_count,
                                  uint32_t top_bins, uint32_t* out_keys, int32_t* out_ids) {
  std::array<int64_t, 2048> at;
  int64_t sum = 0;
  for (uint32_t b = 0; b < top_bins; ++b) {
    at[b] = sum;
    sum += top_count[b];
  }
  for (int64_t i = 0; i < m; ++i) {
    const uint32_t key = keys[i];
    const int64_t to = at[key >> kDigitShift[0]]++;
    out_keys[to] = key;
    out_ids[to] = ids[i];
  }
  int64_t begin = 0;
  for (uint32_t b = 0; b < top_bins; ++b) {
    const int64_t count = top_count[b];
    uint32_t* bucket_keys = out_keys + begin;
    int32_t* bucket_ids = out_ids + begin;
    begin += count;
    if (count < 2 || std::all_of(bucket_keys + 1, bucket_keys + count,
                                 [&](uint32_t key) { return key == bucket_keys[0]; })) {
      continue;
    }
    if (count <= 16) {  // insertion sort: stable, and cheapest for a handful
      for (int64_t i = 1; i < count; ++i) {
        const uint32_t key = bucket_keys[i];
        const int32_t id = bucket_ids[i];
        int64_t j = i;
        for (; j > 0 && bucket_keys[j - 1] > key; --j) {
          bucket_keys[j] = bucket_keys[j - 1];
          bucket_ids[j] = bucket_ids[j - 1];
        }
        bucket_keys[j] = key;
        bucket_ids[j] = id;
      }
      continue;
    }
    // The input buffers are free now: the bucket's radix passes use them (the top digit is shared,
    // so it is skipped).
    const auto [sorted_keys, sorted_ids] =
        radix_sort_by_key(bucket_keys, bucket_ids, keys + (bucket_keys - out_keys),
                          ids + (bucket_ids - out_ids), count);
    if (sorted_keys != bucket_keys) {
      std::copy(sorted_keys, sorted_keys + count, bucket_keys);
      std::copy(sorted_ids, sorted_ids + count, bucket_ids);
    }
  }
}

/// Ranks s.keys[0, n) (consumed): s.ids becomes the positions of the k best elements under
/// (key, position) ascending, best first. The tie rule of `better` when keys are rank_keys.
inline void rank_best(int64_t n, int64_t k, SelectionScratch& s) {
  k = std::min(k, n);
  if (k <= 0) {
    s.ids.clear();
    return;
  }
  s.tmp_keys.resize(static_cast<size_t>(n) + 1);
  s.tmp_ids.resize(static_cast<size_t>(n) + 1);
  s.ids.resize(static_cast<size_t>(n) + 1);
  const uint32_t* keys = s.keys.data();
  uint32_t* out_keys = s.tmp_keys.data();
  int32_t* out_ids = s.tmp_ids.data();
  // Top-digit histogram of all keys; below, of the k taken.
  std::array<int64_t, 2048> hist;
  digit_histogram(keys, n, kDigitShift[0], kDigitBins[0], hist.data());
  uint32_t d = kDigitBins[0] - 1;
  if (k == n) {
    std::copy(keys, keys + n, out_keys);
    std::iota(out_ids, out_ids + n, 0);
  } else {
    // Every element whose top digit is at most the boundary bucket's d, in position order; if
    // bucket d holds more than are taken, cut those few apart by all digits.
    d = 0;
    int64_t need = k;
    while (need > hist[d]) need -= hist[d++];
    int64_t m = 0;
    for (int64_t i = 0; i < n;
         ++i) {  // the write always happens; the cursor says whether it counts
      const uint32_t key = keys[i];
      out_keys[m] = key;
      out_ids[m] = static_cast<int32_t>(i);
      m += (key >> kDigitShift[0]) <= d ? 1 : 0;
    }
    if (m > k) {
      const RankCut cut =
          rank_cut(std::span<const uint32_t>(out_keys, static_cast<size_t>(m)), k, s.tie_keys);
      int64_t taken = 0;
      int64_t equal_left = cut.equal_taken;
      for (int64_t j = 0; j < m; ++j) {
        const uint32_t key = out_keys[j];
        const bool tie =
            (key == cut.equal) & (equal_left > 0);  // below <= equal when ties are taken
        out_keys[taken] = key;
        out_ids[taken] = out_ids[j];
        equal_left -= tie ? 1 : 0;
        taken += ((key < cut.below) | tie) ? 1 : 0;
      }
    }
    hist[d] = need;  // the taken part of bucket d; buckets before it are taken whole
  }
  s.keys.resize(static_cast<size_t>(n) + 1);
  sort_by_key_top_first(out_keys, out_ids, k, hist.data(), d + 1, s.keys.data(), s.ids.data());
  s.ids.resize(static_cast<size_t>(k));
}

/// Marks kept chunks in scratch.kept[0, scores.size()) according to the selection rule.
inline void mark_kept_chunks(const PolicyConfig& p, bool probabilities,
                             std::span<const float> scores, SelectionScratch& s) {
  const int64_t n = static_cast<int64_t>(scores.size());
  s.kept.resize(static_cast<size_t>(n));
  if (n == 0) return;
  uint8_t* kept = s.kept.data();
  const float* score = scores.data();
  if (p.selection == Selection::kThreshold) {
    // Locals so that byte stores cannot alias the threshold or the scores: the loop vectorizes.
    const float threshold = p.threshold;
    int64_t c = 0;
#if defined(__SSE2__) || defined(_M_X64)
    // 16 compares -> two signed-saturating packs -> 16 bytes of 0/1 (compilers emit ~3x the work).
    const __m128 t = _mm_set1_ps(threshold);
    const __m128i one = _mm_set1_epi8(1);
    for (; c + 16 <= n; c += 16) {
      const __m128i a = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c), t));
      const __m128i b = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c + 4), t));
      const __m128i d = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c + 8), t));
      const __m128i e = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c + 12), t));
      const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(d, e));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(kept + c), _mm_and_si128(bytes, one));
    }
#endif
    for (; c < n; ++c) kept[c] = score[c] > threshold ? 1 : 0;
    return;
  }
  std::fill(kept, kept + n, uint8_t{0});
  if (p.selection == Selection::kTopK) {
    const int64_t k = std::min<int64_t>(p.top_k_chunks, n);
    if (k == n) {
      std::fill(kept, kept + n, uint8_t{1});
      return;
    }
    // The k best under (score desc, index asc): every key below the cut, then the lowest-index
    // ties.
    s.keys.resize(static_cast<size_t>(n));
    uint32_t* keys = s.keys.data();
    for (int64_t c = 0; c < n; ++c) keys[c] = rank_key(score[c]);
    const RankCut cut =
        rank_cut(std::span<const uint32_t>(keys, static_cast<size_t>(n)), k, s.tmp_keys);
    int64_t equal_left = cut.equal_taken;
    for (int64_t c = 0; c < n; ++c) {
      const uint32_t key = keys[c];
      if (key < cut.below) {
        kept[c] = 1;
      } else if (key == cut.equal && equal_left > 0) {
        kept[c] = 1;
        --equal_left;
      }
    }
    return;
  }
  // kTopP: probabilities are normalized as they are; other scores are logits (softmax).
  s.order.resize(static_cast<size_t>(n));
  std::iota(s.order.begin(), s.order.end(), int64_t{0});
  auto cmp = [&](int64_t a, int64_t b) { return better(scores[a], a, scores[b], b); };
  std::sort(s.order.begin(), s.order.end(), cmp);
  const double top = scores[s.order[0]];
  double total = 0.0;
  for (int64_t c = 0; c < n; ++c)
    total += probabilities ? std::max(0.0, double{scores[c]}) : std::exp(scores[c] - top);
  double mass = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = s.order[i];
    s.kept[c] = 1;
    mass += probabilities ? std::max(0.0, double{scores[c]}) : std::exp(scores[c] - top);
    if (total <= 0.0 || mass >= p.top_p * total) break;
  }
}

/// Kept-chunk counts of `num_pages` whole pages as page scores (value[count]); `PageChunks` is an
/// int or a std::integral_constant, so that common page sizes get unrolled code.
template <class PageChunks>
inline void count_kept_pages(const uint8_t* kept, int64_t num_pages, PageChunks page_chunks,
                             const float* value, float* page_score) {
  // kept bytes are 0/1: add up to 31 words bytewise (every byte lane, and the sum of all 8 lanes,
  // stays <= 248), then sum the lanes with one multiply.
  const int64_t words = page_chunks / 8;
  const int64_t rest = page_chunks % 8;
  for (int64_t page = 0; page < num_pages; ++page) {
    const uint8_t* k = kept + page * page_chunks;
    uint32_t count = 0;
    for (int64_t w0 = 0; w0 < words; w0 += 31) {
      uint64_t acc = 0;
      for (int64_t w = w0; w < std::min<int64_t>(words, w0 + 31); ++w) {
        uint64_t word;
        std::memcpy(&word, k + 8 * w, 8);
        acc += word;
      }
      count += static_cast<uint32_t>((acc * 0x0101010101010101ull) >> 56);
    }
    for (int64_t c = 0; c < rest; ++c) count += k[words * 8 + c];
    page_score[page] = value[count];  // a lookup: count == 0 (-inf) is an unpredictable branch
  }
}

/// `score` when `kept`, else +0.0f, without a branch (10% kept is unpredictable).
inline float kept_score(uint8_t kept, float score) noexcept {
  return std::bit_cast<float>(std::bit_cast<uint32_t>(score) & (0u - uint32_t{kept}));
}

/// `sum`, or -inf when `count` is 0, without a branch.
inline float sum_or_empty(uint32_t count, float sum) noexcept {
  const uint32_t empty = 0u - static_cast<uint32_t>(count == 0);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(sum) & ~empty) | (0xFF800000u & empty));
}

/// Kept-chunk score sums of `num_pages` whole pages (-inf without kept chunks). Each page's sum
/// adds its chunks in order, as the plain loop of score_pages does; 4 pages run side by side.
template <class PageChunks>
inline void sum_kept_pages(const uint8_t* kept, const float* score, int64_t num_pages,
                           PageChunks page_chunks, float* page_score) {
  constexpr int kLanes = 4;
  int64_t page = 0;
  for (; page + kLanes <= num_pages; page += kLanes) {
    float sum[kLanes] = {};
    uint32_t count[kLanes] = {};
    for (int32_t j = 0; j < page_chunks; ++j) {
      for (int q = 0; q < kLanes; ++q) {
        const int64_t c = (page + q) * page_chunks + j;
        count[q] += kept[c];
        sum[q] += kept_score(kept[c], score[c]);
      }
    }
    for (int q = 0; q < kLanes; ++q) page_score[page + q] = sum_or_empty(count[q], sum[q]);
  }
  for (; page < num_pages; ++page) {
    uint32_t count = 0;
    float sum = 0.0f;
    for (int32_t j = 0; j < page_chunks; ++j) {
      const int64_t c = page * page_chunks + j;
      count += kept[c];
      sum += kept_score(kept[c], score[c]);
    }
    page_score[page] = sum_or_empty(count, sum);
  }
}

/// Page scores of pages [first, num_pages) chunk by chunk (a partial last page, pages past the
/// scored chunks, page sizes without a kernel).
inline void score_pages_plain(bool mass, const uint8_t* kept, const float* score, int64_t n,
                              int64_t first, int64_t num_pages, int32_t page_chunks,
                              float* page_score) {
  for (int64_t page = first; page < num_pages; ++page) {
    const int64_t begin = page * page_chunks;
    const int64_t end = std::min<int64_t>(begin + page_chunks, n);
    int32_t count = 0;
    float sum = 0.0f;
    for (int64_t c = begin; c < end; ++c) {
      count += kept[c];
      sum += kept[c] ? score[c] : 0.0f;
    }
    page_score[page] = count == 0 ? -INFINITY : (mass ? sum : static_cast<float>(count));
  }
}

/// Page scores from kept chunks: count or score mass; pages without kept chunks get -inf.
/// Requires kept bytes of 0 or 1 (mark_kept_chunks writes those).
inline void score_pages(const PolicyConfig& p, std::span<const float> scores, int64_t num_pages,
                        int32_t page_chunks, SelectionScratch& s) {
  s.page_score.resize(static_cast<size_t>(num_pages));
  const int64_t n = static_cast<int64_t>(scores.size());
  const bool mass = p.page_score == PageScore::kScoreMass;
  const uint8_t* kept = s.kept.data();
  const float* score = scores.data();
  float* page_score = s.page_score.data();
  // Pages whose chunks are all scored take the kernels; the rest (a partial last page, pages past
  // the scored chunks) the plain loop.
  const int64_t full = std::min<int64_t>(num_pages, n / page_chunks);
  auto run = [&](auto chunks) {
    if (mass) {
      sum_kept_pages(kept, score, full, chunks, page_score);
      return;
    }
    s.count_value.resize(static_cast<size_t>(page_chunks) + 1);
    s.count_value[0] = -INFINITY;
    for (int32_t c = 1; c <= page_chunks; ++c) s.count_value[c] = static_cast<float>(c);
    count_kept_pages(kept, full, chunks, s.count_value.data(), page_score);
  };
  switch (page_chunks) {
    case 8:
      run(std::integral_constant<int32_t, 8>{});
      break;
    case 16:
      run(std::integral_constant<int32_t, 16>{});
      break;
    case 32:
      run(std::integral_constant<int32_t, 32>{});
      break;
    case 64:
      run(std::integral_constant<int32_t, 64>{});
      break;
    default:
      run(page_chunks);
      break;
  }
  score_pages_plain(mass, kept, score, n, full, num_pages, page_chunks, page_score);
}

/// mark_kept_chunks then score_pages for threshold selection with kept-chunk counts (the reference
/// system's rule), in one pass over the scores when pages are whole 16-chunk groups; the same
/// kept bytes and page scores.
inline void mark_and_count_threshold(const PolicyConfig& p, std::span<const float> scores,
                                     int64_t num_pages, int32_t page_chunks, SelectionScratch& s) {
#if defined(__SSE2__) || defined(_M_X64)
  if (page_chunks % 16 == 0) {
    const int64_t n = static_cast<int64_t>(scores.size());
    s.kept.resize(static_cast<size_t>(n));
    s.page_score.resize(static_cast<size_t>(num_pages));
    s.count_value.resize(static_cast<size_t>(page_chunks) + 1);
    s.count_value[0] = -INFINITY;
    for (int32_t c = 1; c <= page_chunks; ++c) s.count_value[c] = static_cast<float>(c);
    const float* score = scores.data();
    uint8_t* kept = s.kept.data();
    float* page_score = s.page_score.data();
    const float* value = s.count_value.data();
    const int64_t full = std::min<int64_t>(num_pages, n / page_chunks);
    const __m128 t = _mm_set1_ps(p.threshold);
    const __m128i one = _mm_set1_epi8(1);
    const __m128i zero = _mm_setzero_si128();
    for (int64_t page = 0; page < full; ++page) {
      __m128i sums = zero;  // two 64-bit lanes of kept-byte sums
      for (int64_t c = page * page_chunks; c < (page + 1) * page_chunks; c += 16) {
        const __m128i a = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c), t));
        const __m128i b = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c + 4), t));
        const __m128i d = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c + 8), t));
        const __m128i e = _mm_castps_si128(_mm_cmpgt_ps(_mm_loadu_ps(score + c + 12), t));
        const __m128i bytes =
            _mm_and_si128(_mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(d, e)), one);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(kept + c), bytes);
        sums = _mm_add_epi64(sums, _mm_sad_epu8(bytes, zero));
      }
      const int32_t count = _mm_cvtsi128_si32(sums) + _mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
      page_score[page] = value[count];
    }
    const float threshold = p.threshold;
    for (int64_t c = full * page_chunks; c < n; ++c) kept[c] = score[c] > threshold ? 1 : 0;
    score_pages_plain(false, kept, score, n, full, num_pages, page_chunks, page_score);
    return;
  }
#endif
  mark_kept_chunks(p, true, scores, s);
  score_pages(p, scores, num_pages, page_chunks, s);
}

}  // namespace lsa::detail
