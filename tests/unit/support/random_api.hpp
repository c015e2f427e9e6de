// The randomized API test, on any store: long random sequences of add / append / commit / step /
// truncate / fork / remove on up to 6 sequences with a small reserve, against the plain reference
// model. After every step each listed slot must hold exactly its page's bytes; after every call
// every resident page has a slot with its bytes; periodically every appended byte is read back
// through read_token.
//
// Seeded and reproducible: the seed is printed on failure; LSA_RANDOM_SEED=<n> overrides it.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/cache_harness.hpp"

namespace lsa::testing::random_api {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;

inline uint64_t base_seed() {
  if (const char* env = std::getenv("LSA_RANDOM_SEED")) return std::strtoull(env, nullptr, 0);
  return 0x15A2026ull;
}

// A random valid configuration with a small reserve (so eviction and recall happen constantly).
inline lsa::CacheConfig random_config(std::mt19937_64& rng, RecallMode mode,
                                      const std::string& mirror) {
  auto uni = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  lsa::CacheConfig c;
  c.num_layers = static_cast<int32_t>(uni(1, 3));
  c.bytes_per_token_per_layer = 4 * uni(1, 4);
  c.chunk_tokens = static_cast<int32_t>(uni(1, 3));
  c.page_chunks = static_cast<int32_t>(uni(1, 3));
  c.max_sequences = 6;
  c.max_tokens = c.page_tokens() * uni(30, 80);
  c.recall_mode = mode;
  c.mirror_path = mirror;
  lsa::PolicyConfig& p = c.policy;
  p.interval = static_cast<int32_t>(uni(1, 4));
  p.spread_phase = uni(0, 1) == 1;
  p.selection = static_cast<lsa::Selection>(uni(0, 2));
  p.threshold = static_cast<float>(uni(-2, 6)) / 10.0f;
  p.top_k_chunks = uni(1, 24);
  p.top_p = static_cast<float>(uni(3, 10)) / 10.0f;
  p.page_score = static_cast<lsa::PageScore>(uni(0, 1));
  p.sink_chunks = static_cast<int32_t>(uni(0, 3));
  p.recent_chunks = static_cast<int32_t>(uni(0, 6));
  p.hysteresis = uni(0, 1) ? 0.0f : static_cast<float>(uni(1, 6)) / 4.0f;
  p.max_recall_pages = static_cast<int32_t>(uni(0, 1) ? 0 : uni(1, 3));
  const lsa::Chunker chunker(c.chunk_tokens, c.page_chunks);
  p.kmax_pages =
      static_cast<int32_t>(chunker.max_forced_pages(p.sink_chunks, p.recent_chunks) + uni(0, 4));
  c.num_slots = c.max_sequences * p.kmax_pages + static_cast<int32_t>(uni(0, 6));
  lsa::validate(c);
  return c;
}

inline std::string describe(const lsa::CacheConfig& c) {
  std::ostringstream os;
  os << "layers " << c.num_layers << " bpt " << c.bytes_per_token_per_layer << " chunk "
     << c.chunk_tokens << " page_chunks " << c.page_chunks << " max_tokens " << c.max_tokens
     << " slots " << c.num_slots << " | interval " << c.policy.interval << " spread "
     << c.policy.spread_phase << " selection " << int(c.policy.selection) << " threshold "
     << c.policy.threshold << " top_k " << c.policy.top_k_chunks << " top_p " << c.policy.top_p
     << " page_score " << int(c.policy.page_score) << " sink " << c.policy.sink_chunks << " recent "
     << c.policy.recent_chunks << " kmax " << c.policy.kmax_pages << " hysteresis "
     << c.policy.hysteresis << " max_recall " << c.policy.max_recall_pages << " | "
     << (c.recall_mode == RecallMode::kSync ? "sync" : "async")
     << (c.mirror_path.empty() ? "" : " file mirror");
  return os.str();
}

// What must not change when a call fails (bytes are covered by the periodic full check).
struct Light {
  std::map<SeqId, std::vector<int32_t>> resident, slots;
  std::map<SeqId, int64_t> length;
  lsa::Stats stats;
};

template <class H>
Light light(const H& h) {
  Light l;
  for (const auto& [id, r] : h.ref.seqs) {
    l.length[id] = h.cache.length(id);
    auto res = h.cache.resident_pages(id);
    l.resident[id].assign(res.begin(), res.end());
    std::vector<int32_t>& s = l.slots[id];
    for (int64_t p = 0; p < h.ref.num_pages(r.length()); ++p) s.push_back(h.cache.slot_of(id, p));
  }
  l.stats = h.cache.stats();
  return l;
}

// A failed call left `h` as `before` was; async lifecycle calls may swap in `settled`'s finished
// recall first, and any call may seal pages that were complete (both documented).
template <class H>
void check_unchanged(const Light& before, const H& h, SeqId settled) {
  const Light after = light(h);
  const bool async = h.config.recall_mode == RecallMode::kAsync;
  if (before.length != after.length) H::fail_with("a failed call changed a length");
  if (before.slots != after.slots) H::fail_with("a failed call changed a slot");
  for (const auto& [id, res] : before.resident) {
    if (async && id == settled) continue;
    if (after.resident.at(id) != res) H::fail_with("a failed call changed a resident set");
  }
  const lsa::Stats& a = before.stats;
  const lsa::Stats& b = after.stats;
  if (a.live_sequences != b.live_sequences || a.total_pages != b.total_pages ||
      a.reserve_slots_used != b.reserve_slots_used || a.refreshes != b.refreshes ||
      a.recalled_pages != b.recalled_pages || a.evictions != b.evictions ||
      a.capacity_refusals != b.capacity_refusals ||
      (!async && a.resident_pages != b.resident_pages)) {
    H::fail_with("a failed call changed the stats: " + lsa::testing::to_text(a) + " -> " +
                 lsa::testing::to_text(b));
  }
}

struct Totals {
  int64_t ops = 0, steps = 0, failed_capacity = 0, expected_errors = 0;
  int64_t evictions = 0, recalls = 0, refusals = 0, refreshes = 0, forks = 0, truncates = 0;
};

// One episode: a fresh random cache on StoreT and `num_ops` random calls; a quarter of the
// episodes use a file mirror when `file_mirrors` is set.
template <class StoreT, class... StoreOptions>
void run_episode(uint64_t seed, RecallMode mode, int num_ops, bool file_mirrors, Totals& totals,
                 const StoreOptions&... store_options) {
  using H = BasicHarness<StoreT>;
  using Kv = typename H::Kv;
  std::mt19937_64 rng(seed);
  auto uni = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  TempDir dir;
  const bool file = uni(0, 3) == 0 && file_mirrors;
  const lsa::CacheConfig config = random_config(rng, mode, file ? dir.file("mirror.bin") : "");
  INFO("config: " << describe(config));
  H h(config, seed ^ 0x9E3779B97F4A7C15ull, store_options...);
  const std::vector<SeqId> pool = {0, 1, 7, 42, 1000, -5, SeqId{1} << 40, 99};
  auto live = [&] {
    std::vector<SeqId> ids;
    for (const auto& [id, r] : h.ref.seqs) ids.push_back(id);
    return ids;
  };
  auto pick_live = [&]() -> SeqId {
    const auto ids = live();
    return ids.empty() ? pool[uni(0, 7)] : ids[uni(0, static_cast<int64_t>(ids.size()) - 1)];
  };
  auto any_id = [&]() -> SeqId { return uni(0, 9) == 0 ? pool[uni(0, 7)] : pick_live(); };
  const int64_t pt = config.page_tokens();

  for (int op = 0; op < num_ops; ++op) {
    const int64_t kind = uni(0, 99);
    std::ostringstream what;
    Status s = Status::kOk;
    Status want = Status::kOk;  // kCapacityExceeded also allowed where noted
    bool capacity_ok = false;
    SeqId settled = -1;
    const Light before = light(h);
    const int64_t num_live = static_cast<int64_t>(h.ref.seqs.size());
    if (kind < 3 || num_live == 0) {
      const SeqId id = pool[uni(0, 7)];
      what << "add " << id;
      want = h.ref.seqs.contains(id)            ? Status::kDuplicateSequence
             : num_live == config.max_sequences ? Status::kTooManySequences
                                                : Status::kOk;
      s = h.add(id);
    } else if (kind < 48) {
      const SeqId id = any_id();
      const int64_t r = uni(0, 99);
      const int32_t n = static_cast<int32_t>(r < 70   ? uni(1, 3)
                                             : r < 95 ? uni(1, 4 * pt + 4)
                                                      : uni(0, 3 * pt * config.policy.kmax_pages));
      const Kv mode_kv = uni(0, 4) == 0 ? Kv::kEngineWrites : Kv::kPass;
      what << "append " << id << " " << n << (mode_kv == Kv::kPass ? " kv" : " engine-written");
      if (!h.ref.seqs.contains(id)) {
        want = Status::kUnknownSequence;
      } else if (h.ref.seqs.at(id).length() + n > config.max_tokens) {
        want = Status::kOutOfRange;
      } else {
        capacity_ok = true;
      }
      s = h.append(id, n, mode_kv);
    } else if (kind < 50) {
      const SeqId id = any_id();
      what << "commit " << id;
      want = h.ref.seqs.contains(id) ? Status::kOk : Status::kUnknownSequence;
      s = h.commit(id);
    } else if (kind < 86) {
      std::vector<SeqId> batch = live();
      std::shuffle(batch.begin(), batch.end(), rng);
      batch.resize(static_cast<size_t>(uni(1, static_cast<int64_t>(batch.size()))));
      const int64_t r = uni(0, 49);
      if (r == 0) {
        batch.push_back(batch[0]);
        want = batch.size() > static_cast<size_t>(config.max_sequences)
                   ? Status::kInvalidArgument
                   : Status::kDuplicateSequence;
      } else if (r == 1) {
        SeqId unknown = pool[uni(0, 7)];
        if (!h.ref.seqs.contains(unknown)) {
          batch.insert(batch.begin() + uni(0, static_cast<int64_t>(batch.size())), unknown);
          want = batch.size() > static_cast<size_t>(config.max_sequences)
                     ? Status::kInvalidArgument
                     : Status::kUnknownSequence;
        }
      }
      std::vector<float> q(batch.size());
      for (float& v : q) v = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
      what << "step of " << batch.size();
      s = h.step(batch, q);  // checks every listed slot's bytes on success
      ++totals.steps;
    } else if (kind < 91) {
      const SeqId id = any_id();
      const int64_t len = h.ref.seqs.contains(id) ? h.ref.seqs.at(id).length() : 0;
      const int64_t r = uni(0, 19);
      const int64_t n = r == 0   ? len + 1
                        : r == 1 ? -1
                        : r < 10 ? uni(std::max<int64_t>(0, len - 2 * pt), len)
                                 : uni(0, len);
      what << "truncate " << id << " to " << n << " of " << len;
      if (!h.ref.seqs.contains(id)) {
        want = Status::kUnknownSequence;
      } else if (n < 0 || n > len) {
        want = Status::kOutOfRange;
      } else {
        capacity_ok = true;
        settled = id;
      }
      s = h.truncate(id, n);
      totals.truncates += s == Status::kOk;
    } else if (kind < 96) {
      const SeqId src = any_id();
      const SeqId dst = pool[uni(0, 7)];
      what << "fork " << src << " -> " << dst;
      if (!h.ref.seqs.contains(src)) {
        want = Status::kUnknownSequence;
      } else if (h.ref.seqs.contains(dst)) {
        want = Status::kDuplicateSequence;
      } else if (num_live == config.max_sequences) {
        want = Status::kTooManySequences;
      } else {
        capacity_ok = true;
        settled = src;
      }
      s = h.fork(src, dst);
      totals.forks += s == Status::kOk;
    } else {
      const SeqId id = any_id();
      what << "remove " << id;
      want = h.ref.seqs.contains(id) ? Status::kOk : Status::kUnknownSequence;
      s = h.remove(id);
    }
    INFO("op " << op << ": " << what.str() << " -> " << lsa::to_string(s));
    ++totals.ops;
    if (s != want && !(capacity_ok && s == Status::kCapacityExceeded)) {
      H::fail_with("unexpected status " + std::string(lsa::to_string(s)) + ", wanted " +
                   std::string(lsa::to_string(want)));
    }
    if (s != Status::kOk) {
      totals.failed_capacity += s == Status::kCapacityExceeded;
      totals.expected_errors += s != Status::kCapacityExceeded;
      check_unchanged(before, h, settled);
    }
    h.check_state();
    if (op % 1000 == 999) h.check_bytes();
  }
  h.check_all();
  const lsa::Stats st = h.cache.stats();
  totals.evictions += st.evictions;
  totals.recalls += st.recalled_pages;
  totals.refusals += st.capacity_refusals;
  totals.refreshes += st.refreshes;
  // Removing everything gives every slot and mirror cell back.
  for (SeqId id : live()) REQUIRE(h.remove(id) == Status::kOk);
  const lsa::Stats end = h.cache.stats();
  CHECK(end.reserve_slots_used == 0);
  CHECK(end.mirror_pages == 0);
}

// `episodes` episodes of `ops_per_episode` calls on StoreT (built with `store_options`), then
// checks the run exercised eviction, recall, refresh, fork, truncate and the error paths.
template <class StoreT, class... StoreOptions>
void run(RecallMode mode, int episodes, int ops_per_episode, bool file_mirrors,
         const StoreOptions&... store_options) {
  const uint64_t seed = base_seed();
  INFO("seed " << seed << " (set LSA_RANDOM_SEED to replay)");
  Totals totals;
  for (int e = 0; e < episodes; ++e) {
    const uint64_t episode_seed = seed + 0x1000193ull * static_cast<uint64_t>(e + 1);
    INFO("episode " << e << " (episode seed " << episode_seed << ")");
    run_episode<StoreT>(episode_seed, mode, ops_per_episode, file_mirrors, totals,
                        store_options...);
  }
  UNSCOPED_INFO("ops " << totals.ops << " steps " << totals.steps << " evictions "
                       << totals.evictions << " recalls " << totals.recalls << " refusals "
                       << totals.refusals << " refreshes " << totals.refreshes
                       << " capacity failures " << totals.failed_capacity << " expected errors "
                       << totals.expected_errors << " forks " << totals.forks << " truncates "
                       << totals.truncates);
  // The run exercised what it is meant to.
  CHECK(totals.ops == int64_t{episodes} * ops_per_episode);
  CHECK(totals.evictions > totals.ops / 20);
  CHECK(totals.recalls > totals.ops / 50);
  CHECK(totals.refreshes > totals.steps / 4);
  CHECK(totals.forks > totals.ops / 200);
  CHECK(totals.truncates > totals.ops / 100);
  CHECK(totals.failed_capacity > 0);
  CHECK(totals.expected_errors > totals.ops / 100);
}

}  // namespace lsa::testing::random_api
