// Drives a SparseKVCache<Chunker, GivenScoreScorer> and a RefModel side by side and checks the
// cache against the model after every call: views, resident sets, slots and every token's bytes.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/chunker.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "lsa/stats.hpp"
#include "lsa/status.hpp"
#include "lsa/view.hpp"
#include "support/given_score_scorer.hpp"
#include "support/reference_model.hpp"

namespace lsa {
// Catch2 prints statuses by name.
inline std::ostream& operator<<(std::ostream& os, Status s) { return os << to_string(s); }
}  // namespace lsa

namespace lsa::testing {

/// The cache under test: fixed chunking, scores chosen by the test, any store.
template <class StoreT = HostStore>
using BasicTestCache = SparseKVCache<Chunker, GivenScoreScorer, LookaheadPolicy, StoreT>;
/// The cache under test on the host store.
using TestCache = BasicTestCache<>;

/// Reads `bytes` bytes at `offset` of a host store's slot (a device store's test support overloads
/// these two in its own namespace).
inline void read_slot(const HostStore& store, int32_t slot, int64_t offset, std::byte* dst, int64_t bytes) {
  std::memcpy(dst, store.slot_data(slot) + offset, static_cast<size_t>(bytes));
}
/// Writes `bytes` bytes at `offset` of a host store's slot, as an engine's KV write does.
inline void write_slot(HostStore& store, int32_t slot, int64_t offset, const std::byte* src, int64_t bytes) {
  std::memcpy(store.slot_data(slot) + offset, src, static_cast<size_t>(bytes));
}

/// A fresh directory under the system temp dir, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lsa_test_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// A file path inside the directory.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// A small valid configuration: 2 layers, 8 B per token and layer, 2-token chunks, 2-chunk
/// (4-token) pages, a refresh every step, sink 1 chunk, recent 2 chunks, kmax 6 pages.
inline CacheConfig small_config() {
  CacheConfig c;
  c.num_layers = 2;
  c.bytes_per_token_per_layer = 8;
  c.chunk_tokens = 2;
  c.page_chunks = 2;
  c.max_sequences = 4;
  c.max_tokens = 1024;
  c.policy.interval = 1;
  c.policy.spread_phase = false;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 2;
  c.policy.kmax_pages = 6;
  c.policy.threshold = 0.5f;
  c.num_slots = c.max_sequences * c.policy.kmax_pages;
  return c;
}

/// Every field of two Stats equal.
inline bool same_stats(const Stats& a, const Stats& b) {
  return a.live_sequences == b.live_sequences && a.total_pages == b.total_pages &&
         a.resident_pages == b.resident_pages && a.resident_fraction == b.resident_fraction &&
         a.reserve_slots_used == b.reserve_slots_used && a.mirror_pages == b.mirror_pages &&
         a.refreshes == b.refreshes && a.recalled_pages == b.recalled_pages &&
         a.recalled_bytes == b.recalled_bytes && a.sealed_pages == b.sealed_pages &&
         a.evictions == b.evictions && a.capacity_refusals == b.capacity_refusals &&
         a.recall_errors == b.recall_errors;
}

inline std::string to_text(const Stats& s) {
  std::ostringstream os;
  os << "{live " << s.live_sequences << ", pages " << s.total_pages << ", resident "
     << s.resident_pages << ", slots_used " << s.reserve_slots_used << ", mirror "
     << s.mirror_pages << ", refreshes " << s.refreshes << ", recalled " << s.recalled_pages
     << ", sealed " << s.sealed_pages << ", evictions " << s.evictions << ", refusals "
     << s.capacity_refusals << ", recall_errors " << s.recall_errors << "}";
  return os.str();
}

template <class T>
std::string to_text(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? " " : "") << v[i];
  os << "]";
  return os.str();
}

/// Everything observable about a cache's sequences: lengths, resident sets, slots, bytes, stats.
struct Snapshot {
  struct Seq {
    int64_t length = 0;
    std::vector<int32_t> resident;
    std::vector<int32_t> slots;   ///< slot_of for every logical page
    std::vector<std::byte> bytes; ///< read_token of every token and layer
    bool operator==(const Seq&) const = default;
  };
  std::map<SeqId, Seq> seqs;
  Stats stats;

  /// Empty when equal, else what differs.
  std::string diff(const Snapshot& o) const {
    std::ostringstream os;
    if (!same_stats(stats, o.stats)) os << "stats " << to_text(stats) << " vs " << to_text(o.stats) << "; ";
    for (const auto& [id, s] : seqs) {
      auto it = o.seqs.find(id);
      if (it == o.seqs.end()) {
        os << "seq " << id << " missing; ";
        continue;
      }
      const Seq& t = it->second;
      if (s.length != t.length) os << "seq " << id << " length " << s.length << " vs " << t.length << "; ";
      if (s.resident != t.resident) {
        os << "seq " << id << " resident " << to_text(s.resident) << " vs " << to_text(t.resident) << "; ";
      }
      if (s.slots != t.slots) os << "seq " << id << " slots " << to_text(s.slots) << " vs " << to_text(t.slots) << "; ";
      if (s.bytes != t.bytes) os << "seq " << id << " bytes differ; ";
    }
    for (const auto& [id, s] : o.seqs) {
      if (!seqs.contains(id)) os << "seq " << id << " appeared; ";
    }
    return os.str();
  }
};

/// Snapshot of the sequences `ids` (those that are live) of any cache.
template <class CacheT>
Snapshot take_snapshot(const CacheT& cache, std::initializer_list<SeqId> ids) {
  Snapshot snap;
  const CacheConfig& c = cache.config();
  const int64_t bpt = c.bytes_per_token_per_layer;
  const Chunker chunker(c.chunk_tokens, c.page_chunks);
  for (SeqId id : ids) {
    if (!cache.contains(id)) continue;
    Snapshot::Seq& s = snap.seqs[id];
    s.length = cache.length(id);
    auto res = cache.resident_pages(id);
    s.resident.assign(res.begin(), res.end());
    for (int64_t p = 0; p < chunker.num_pages(s.length); ++p) s.slots.push_back(cache.slot_of(id, p));
    s.bytes.resize(static_cast<size_t>(s.length * c.num_layers * bpt));
    for (int64_t t = 0; t < s.length; ++t) {
      for (int32_t l = 0; l < c.num_layers; ++l) {
        if (cache.read_token(id, t, l, s.bytes.data() + (t * c.num_layers + l) * bpt) != Status::kOk) {
          throw std::runtime_error("read_token failed in snapshot");
        }
      }
    }
  }
  snap.stats = cache.stats();
  return snap;
}

/// A BasicTestCache<StoreT> and a RefModel driven together; every check FAILs the running test
/// case with a message saying what is wrong.
template <class StoreT>
class BasicHarness {
 public:
  /// How append's KV reaches the cache.
  enum class Kv {
    kPass,          ///< passed to append (lsa copies it and commits)
    kEngineWrites,  ///< written by the test at token_kv(out[i]) after append, committed later
  };

  /// `store_options` go to the store after the config (a device store's CudaStoreOptions).
  template <class... StoreOptions>
  explicit BasicHarness(const CacheConfig& config, uint64_t seed = 1, const StoreOptions&... store_options)
      : config(config),
        cache(config, store_options...),
        ref(config.page_tokens(), config.chunk_tokens),
        rng(seed),
        max_pages_(static_cast<int32_t>(ref.num_pages(config.max_tokens))),
        views(config.max_sequences, max_pages_, max_pages_) {
    key_fn = [this](SeqId, int64_t) { return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng); };
  }

  const CacheConfig config;
  BasicTestCache<StoreT> cache;
  RefModel ref;
  std::mt19937_64 rng;
  /// Key (= score for q = 1) of chunk `c` of sequence `id`; uniform in [-1, 1] by default.
  std::function<float(SeqId id, int64_t c)> key_fn;
  /// Check resident pages' slot bytes in check_state (costly for big pages).
  bool check_resident_bytes = true;
  /// The mirror may fail or be damaged (fault injection): check_bytes then accepts kIoError and
  /// kCorrupt from read_token. A wrong byte with kOk is never accepted.
  bool mirror_faults = false;

 private:
  int32_t max_pages_;

 public:
  ViewStorage views;

  // ---- operations: call the cache, mirror success in the model ------------------------------

  Status add(SeqId id) {
    const Status s = cache.add(id);
    if (s == Status::kOk) ref.add(id);
    return s;
  }

  /// Appends n tokens with random KV bytes and key_fn keys for the chunks they complete.
  Status append(SeqId id, int32_t n, Kv mode = Kv::kPass) {
    const int64_t old_len = cache.length(id);
    const int64_t ct = config.chunk_tokens;
    const int64_t rows = n >= 0 ? (old_len + n) / ct - old_len / ct : 0;
    std::vector<float> keys(static_cast<size_t>(std::max<int64_t>(rows, 0)));
    for (int64_t i = 0; i < rows; ++i) keys[i] = key_fn(id, old_len / ct + i);
    const int64_t tb = token_bytes();
    std::vector<std::byte> kv(static_cast<size_t>(std::max(n, 0) * tb));
    fill_random(kv);
    std::vector<TokenSlot> out(static_cast<size_t>(std::max(n, 0)));
    const Status s = cache.append(id, n, KeyRows{reinterpret_cast<const std::byte*>(keys.data()), rows},
                                  out, mode == Kv::kPass ? kv.data() : nullptr);
    if (s != Status::kOk) {
      mark_maybe_committed(id);
      return s;
    }
    std::vector<std::vector<std::byte>> tokens(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      const int64_t t = old_len + i;
      const int64_t page = t / config.page_tokens();
      // With lsa-copied KV a page may have gone straight to the mirror (slot -1).
      const bool streamed = mode == Kv::kPass && out[i].slot == -1;
      if (out[i].slot != cache.slot_of(id, page) || (out[i].slot < 0 && !streamed) ||
          out[i].offset != static_cast<int32_t>(t % config.page_tokens())) {
        fail_with("append out[" + std::to_string(i) + "] = (" + std::to_string(out[i].slot) + ", " +
                  std::to_string(out[i].offset) + ") but token " + std::to_string(t) + " is page " +
                  std::to_string(page) + " in slot " + std::to_string(cache.slot_of(id, page)));
      }
      tokens[i].assign(kv.begin() + i * tb, kv.begin() + (i + 1) * tb);
      if (mode == Kv::kEngineWrites) {
        for (int32_t l = 0; l < config.num_layers; ++l) {
          const int64_t at = cache.token_kv(out[i].slot, l, out[i].offset) - cache.store().slot_data(out[i].slot);
          write_slot(cache.store(), out[i].slot, at, tokens[i].data() + l * config.bytes_per_token_per_layer,
                     config.bytes_per_token_per_layer);
        }
      }
    }
    ref.append(id, std::move(tokens), keys, mode == Kv::kPass);
    return s;
  }

  /// Appends n tokens in appends of at most `piece` tokens (a prefill larger than the free slots).
  Status append_in_pieces(SeqId id, int32_t n, int32_t piece, Kv mode = Kv::kPass) {
    for (int32_t done = 0; done < n; done += piece) {
      if (Status s = append(id, std::min(piece, n - done), mode); s != Status::kOk) return s;
    }
    return Status::kOk;
  }

  Status commit(SeqId id) {
    const Status s = cache.commit(id);
    if (s == Status::kOk) {
      ref.commit(id);
    } else {
      mark_maybe_committed(id);  // committed, then sealing failed
    }
    return s;
  }

  Status truncate(SeqId id, int64_t n) {
    const Status s = cache.truncate(id, n);
    if (s == Status::kOk) {
      ref.truncate(id, n);
    } else {
      mark_maybe_committed(id);
    }
    return s;
  }

  Status fork(SeqId src, SeqId dst) {
    const Status s = cache.fork(src, dst);
    if (s == Status::kOk) {
      ref.fork(src, dst);
    } else {
      mark_maybe_committed(src);
    }
    return s;
  }

  Status remove(SeqId id) {
    const Status s = cache.remove(id);
    if (s == Status::kOk) ref.remove(id);
    return s;
  }

  /// One step with query value q[b] for batch row b (every row gets a query); checks the view.
  Status step(std::span<const SeqId> batch, std::span<const float> q) {
    const Status s = step_unchecked(batch, q);
    if (s == Status::kOk) check_view(batch);
    return s;
  }

  /// One step without checking the view (check_view can follow).
  Status step_unchecked(std::span<const SeqId> batch, std::span<const float> q) {
    q_values_.assign(q.begin(), q.end());
    queries_.resize(batch.size());
    for (size_t b = 0; b < batch.size(); ++b) queries_[b] = Query{std::span<const float>(&q_values_[b], 1), {}};
    return cache.step(batch, queries_, views.buffers());
  }
  Status step_unchecked(std::initializer_list<SeqId> batch, float q) {
    std::vector<float> qs(batch.size(), q);
    return step_unchecked(std::span<const SeqId>(batch.begin(), batch.size()), qs);
  }

  /// One step with the same query value for every row.
  Status step(std::span<const SeqId> batch, float q = 1.0f) {
    std::vector<float> qs(batch.size(), q);
    return step(batch, qs);
  }
  Status step(std::initializer_list<SeqId> batch, float q = 1.0f) {
    return step(std::span<const SeqId>(batch.begin(), batch.size()), q);
  }

  /// Checked steps (yielding between them, so an async worker gets to run) until pred() holds;
  /// false when it never did within `max_steps`.
  template <class Pred>
  bool step_until(std::span<const SeqId> batch, float q, Pred&& pred, int max_steps = 200000) {
    for (int i = 0; i < max_steps; ++i) {
      if (pred()) return true;
      if (step(batch, q) != Status::kOk) fail_with("step failed in step_until");
      std::this_thread::yield();
    }
    return pred();
  }
  template <class Pred>
  bool step_until(std::initializer_list<SeqId> batch, float q, Pred&& pred, int max_steps = 200000) {
    return step_until(std::span<const SeqId>(batch.begin(), batch.size()), q, std::forward<Pred>(pred), max_steps);
  }

  /// Async: steps `id` until its pending set (if any) is in and a refresh is due again (histories
  /// that do not fit, interval 1). Sync: nothing to wait for.
  void settle(SeqId id, float q = 1.0f) {
    if (config.recall_mode != RecallMode::kAsync) return;
    if (!step_until({id}, q, [&] { return cache.refresh_due(id); })) fail_with("recall never landed");
  }

  // ---- checks -------------------------------------------------------------------------------

  /// Bytes of one token, all layers.
  int64_t token_bytes() const { return config.num_layers * config.bytes_per_token_per_layer; }

  /// Pages that must be listed: sink, recent, tail and pages with tokens past `committed` (the
  /// model's committed count by default), or every page while the history fits kmax.
  std::vector<bool> must_list(const RefSequence& r) const { return must_list(r, r.committed); }
  std::vector<bool> must_list(const RefSequence& r, int64_t committed) const {
    const int64_t len = r.length();
    const int64_t np = ref.num_pages(len);
    std::vector<bool> must(static_cast<size_t>(np), false);
    if (np == 0) return must;
    if (np <= config.policy.kmax_pages) {
      must.assign(static_cast<size_t>(np), true);
      return must;
    }
    const int64_t ct = config.chunk_tokens, pc = config.page_chunks;
    const int64_t num_chunks = (len + ct - 1) / ct;
    for (int64_t c = 0; c < std::min<int64_t>(config.policy.sink_chunks, num_chunks); ++c) must[c / pc] = true;
    for (int64_t c = std::max<int64_t>(0, num_chunks - config.policy.recent_chunks); c < num_chunks; ++c) {
      must[c / pc] = true;
    }
    must[np - 1] = true;
    for (int64_t p = committed / config.page_tokens(); p < np; ++p) must[p] = true;
    return must;
  }

  /// Empty when `slot` holds the bytes of every valid token of logical page p of r, all layers.
  std::string page_mismatch(const RefSequence& r, int64_t p, int32_t slot) const {
    std::vector<std::byte> bytes(static_cast<size_t>(config.page_bytes()));
    read_slot(cache.store(), slot, 0, bytes.data(), config.page_bytes());
    const std::byte* base = bytes.data();
    const int64_t pt = config.page_tokens(), bpt = config.bytes_per_token_per_layer;
    const int64_t bppl = config.bytes_per_page_per_layer();
    const int64_t end = std::min(r.length(), (p + 1) * pt);
    for (int64_t t = p * pt; t < end; ++t) {
      for (int32_t l = 0; l < config.num_layers; ++l) {
        if (std::memcmp(base + l * bppl + (t - p * pt) * bpt, r.tokens[t].data() + l * bpt,
                        static_cast<size_t>(bpt)) != 0) {
          return "slot " + std::to_string(slot) + " of page " + std::to_string(p) +
                 " has wrong bytes for token " + std::to_string(t) + " layer " + std::to_string(l);
        }
      }
    }
    return {};
  }

  /// Checks the view the last successful step wrote for `batch` against the cache and the model.
  void check_view(std::span<const SeqId> batch) const {
    const ViewStorage& v = views;
    const auto B = static_cast<int64_t>(batch.size());
    const int64_t cap = static_cast<int64_t>(v.indices.size());
    if (v.indptr[0] != 0) fail_with("indptr[0] != 0");
    std::unordered_map<int32_t, std::pair<SeqId, uint64_t>> owner;
    for (int64_t b = 0; b < B; ++b) {
      const SeqId id = batch[b];
      auto it = ref.seqs.find(id);
      if (it == ref.seqs.end()) fail_with("step listed unknown sequence " + std::to_string(id));
      const RefSequence& r = it->second;
      const std::string who = "seq " + std::to_string(id) + " (row " + std::to_string(b) + "): ";
      const int64_t len = r.length();
      const int64_t np = ref.num_pages(len);
      const int64_t begin = v.indptr[b], end = v.indptr[b + 1];
      if (begin < 0 || end < begin || end > cap) fail_with(who + "bad indptr");
      const int32_t* bt = v.block_table.data() + b * max_pages_;
      std::vector<int32_t> pages;
      for (int32_t p = 0; p < max_pages_; ++p) {
        if (bt[p] == -1) continue;
        if (p >= np) fail_with(who + "block table lists page " + std::to_string(p) + " past the end");
        pages.push_back(p);
      }
      if (static_cast<int64_t>(pages.size()) != end - begin) {
        fail_with(who + "block table lists " + std::to_string(pages.size()) + " pages, CSR " +
                  std::to_string(end - begin));
      }
      const int32_t* sl = v.slot_lists.data() + b * max_pages_;
      for (int64_t i = 0; i < max_pages_; ++i) {
        const int32_t want = i < end - begin ? v.indices[begin + i] : -1;
        if (sl[i] != want) fail_with(who + "slot list differs from CSR at " + std::to_string(i));
      }
      const int32_t want_last = len == 0 ? 0 : static_cast<int32_t>(len - (np - 1) * config.page_tokens());
      if (v.last_page_len[b] != want_last) {
        fail_with(who + "last_page_len " + std::to_string(v.last_page_len[b]) + " != " + std::to_string(want_last));
      }
      auto res = cache.resident_pages(id);
      if (!std::equal(res.begin(), res.end(), pages.begin(), pages.end())) {
        fail_with(who + "view lists " + to_text(pages) + " but resident set is " +
                  to_text(std::vector<int32_t>(res.begin(), res.end())));
      }
      std::vector<int32_t> row_slots;
      for (size_t i = 0; i < pages.size(); ++i) {
        const int32_t p = pages[i];
        const int32_t slot = v.indices[begin + static_cast<int64_t>(i)];
        if (slot != bt[p]) fail_with(who + "CSR and block table disagree on page " + std::to_string(p));
        if (slot < 0 || slot >= config.num_slots) fail_with(who + "slot out of range");
        if (cache.slot_of(id, p) != slot) fail_with(who + "listed slot != slot_of for page " + std::to_string(p));
        row_slots.push_back(slot);
        if (std::string m = page_mismatch(r, p, slot); !m.empty()) fail_with(who + m);
        auto [o, fresh] = owner.emplace(slot, std::pair{id, r.page_uid[p]});
        if (!fresh && o->second.second != r.page_uid[p]) {
          fail_with(who + "slot " + std::to_string(slot) + " listed for page " + std::to_string(p) +
                    " and for an unrelated page of seq " + std::to_string(o->second.first));
        }
      }
      std::sort(row_slots.begin(), row_slots.end());
      if (std::adjacent_find(row_slots.begin(), row_slots.end()) != row_slots.end()) {
        fail_with(who + "a slot is listed twice");
      }
      const std::vector<bool> must = must_list(r);
      for (int64_t p = 0; p < np; ++p) {
        if (must[p] && bt[p] == -1) {
          fail_with(who + "page " + std::to_string(p) + " of " + std::to_string(np) +
                    " must be listed (sink/recent/tail/uncommitted, or the history fits kmax)");
        }
      }
    }
    for (int64_t k = v.indptr[B]; k < cap; ++k) {
      if (v.indices[k] != -1) fail_with("CSR padding past indptr[B] is not -1");
    }
  }

  /// Checks every live sequence: length, resident set (ascending, each page with a slot holding its
  /// bytes, forced pages included), no slot shared by unrelated pages, stats totals.
  void check_state() const {
    std::unordered_map<int32_t, std::pair<SeqId, uint64_t>> owner;
    int64_t total_pages = 0, resident_pages = 0;
    for (const auto& [id, r] : ref.seqs) {
      const std::string who = "seq " + std::to_string(id) + ": ";
      if (!cache.contains(id)) fail_with(who + "not live in the cache");
      if (cache.length(id) != r.length()) {
        fail_with(who + "length " + std::to_string(cache.length(id)) + " != " + std::to_string(r.length()));
      }
      const int64_t np = ref.num_pages(r.length());
      total_pages += np;
      auto res = cache.resident_pages(id);
      resident_pages += static_cast<int64_t>(res.size());
      std::vector<bool> in_set(static_cast<size_t>(np), false);
      int32_t prev = -1;
      for (int32_t p : res) {
        if (p <= prev || p >= np) fail_with(who + "resident set not ascending within the history");
        prev = p;
        in_set[p] = true;
        const int32_t slot = cache.slot_of(id, p);
        if (slot < 0) fail_with(who + "resident page " + std::to_string(p) + " has no slot (evicted)");
        if (check_resident_bytes) {
          if (std::string m = page_mismatch(r, p, slot); !m.empty()) fail_with(who + "resident " + m);
        }
        auto [o, fresh] = owner.emplace(slot, std::pair{id, r.page_uid[p]});
        if (!fresh && o->second.second != r.page_uid[p]) {
          fail_with(who + "slot " + std::to_string(slot) + " of resident page " + std::to_string(p) +
                    " is also resident for an unrelated page of seq " + std::to_string(o->second.first));
        }
      }
      const std::vector<bool> must = must_list(r);
      for (int64_t p = 0; p < np; ++p) {
        if (must[p] && !in_set[p]) {
          fail_with(who + "page " + std::to_string(p) + " of " + std::to_string(np) +
                    " must be resident (sink/recent/tail/uncommitted, or the history fits kmax)");
        }
      }
      // Once the history outgrows the budget the set holds at most kmax_pages (more only when
      // more pages than that are forced).
      // (Forced as far as the model can tell: a failed call may or may not have committed.)
      const std::vector<bool> forced_pages = must_list(r, r.surely_committed);
      const auto forced = static_cast<int64_t>(std::count(forced_pages.begin(), forced_pages.end(), true));
      const int64_t budget = std::max<int64_t>(config.policy.kmax_pages, forced);
      if (np > config.policy.kmax_pages && static_cast<int64_t>(res.size()) > budget) {
        fail_with(who + "resident set of " + std::to_string(res.size()) + " pages exceeds " +
                  std::to_string(budget) + " (kmax_pages, or the forced pages): " +
                  to_text(std::vector<int32_t>(res.begin(), res.end())) + " of " + std::to_string(np));
      }
    }
    const Stats s = cache.stats();
    if (s.live_sequences != static_cast<int64_t>(ref.seqs.size()) || s.total_pages != total_pages ||
        s.resident_pages != resident_pages) {
      fail_with("stats disagree with the model: " + to_text(s));
    }
  }

  /// Every token of every live sequence, every layer, read back byte-exact through read_token.
  void check_bytes() const {
    std::vector<std::byte> buf(static_cast<size_t>(config.bytes_per_token_per_layer));
    const int64_t bpt = config.bytes_per_token_per_layer;
    for (const auto& [id, r] : ref.seqs) {
      for (int64_t t = 0; t < r.length(); ++t) {
        for (int32_t l = 0; l < config.num_layers; ++l) {
          const Status s = cache.read_token(id, t, l, buf.data());
          if (mirror_faults && (s == Status::kIoError || s == Status::kCorrupt)) continue;
          if (s != Status::kOk || std::memcmp(buf.data(), r.tokens[t].data() + l * bpt, buf.size()) != 0) {
            fail_with("seq " + std::to_string(id) + " token " + std::to_string(t) + " layer " +
                      std::to_string(l) + ": read_token " + std::string(to_string(s)) +
                      (s == Status::kOk ? ", wrong bytes" : ""));
          }
        }
      }
    }
  }

  /// check_state and check_bytes.
  void check_all() const {
    check_state();
    check_bytes();
  }

  /// Snapshot of every sequence the model knows (and `extra` ids).
  Snapshot snapshot(std::initializer_list<SeqId> extra = {}) const {
    Snapshot snap;
    for (const auto& [id, r] : ref.seqs) snap.seqs.emplace(id, take_snapshot(cache, {id}).seqs.at(id));
    for (SeqId id : extra) {
      if (cache.contains(id) && !snap.seqs.contains(id)) snap.seqs.emplace(id, take_snapshot(cache, {id}).seqs.at(id));
    }
    snap.stats = cache.stats();
    return snap;
  }

  void fill_random(std::vector<std::byte>& bytes) {
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
      const uint64_t w = rng();
      std::memcpy(bytes.data() + i, &w, 8);
    }
    for (; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(rng());
  }

  [[noreturn]] static void fail_with(const std::string& what) {
    FAIL(what);
    throw std::logic_error(what);  // unreachable: FAIL throws
  }

 private:
  void mark_maybe_committed(SeqId id) {
    // A failing append/truncate/fork may have committed (and sealed) the sequence first.
    if (auto it = ref.seqs.find(id); it != ref.seqs.end()) it->second.committed = it->second.length();
  }

  std::vector<float> q_values_;
  std::vector<Query> queries_;
};

/// The harness on the host store.
using Harness = BasicHarness<HostStore>;

}  // namespace lsa::testing
