// The randomized API test, on any store: long random sequences of add / append / commit / step /
// truncate / fork / remove on up to 6 sequences with a small reserve, against the plain reference
// model. After every step each listed slot must hold exactly its page's bytes; after every call
// every resident page has a slot with its bytes; periodically every appended byte is read back
// through read_token. On the host store a quarter of the episodes use a file mirror whose reads
// and writes fail now and then (HostStoreOptions::fail_io) and whose bytes are sometimes changed
// behind the cache: calls may then fail with kIoError or kCorrupt, pages may be left out of a
// view, but no wrong byte is ever listed or read back with kOk.
//
// Seeded and reproducible: the seed is printed on failure. Environment (for long runs outside CI):
//   LSA_RANDOM_SEED=<n>  the base seed (default 0x15A2026)
//   LSA_RANDOM_OPS=<n>   operations per test case (each case's default is in cache_random_test.cpp)
//   LSA_RANDOM_FAULTS=0  no fault injection
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
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

// Operations a test case runs: LSA_RANDOM_OPS, or `fallback`.
inline int64_t total_ops(int64_t fallback) {
  if (const char* env = std::getenv("LSA_RANDOM_OPS"))
    return std::max<int64_t>(1, std::strtoll(env, nullptr, 0));
  return fallback;
}

// Whether file mirror episodes inject faults (LSA_RANDOM_FAULTS=0 turns them off).
inline bool faults_enabled() {
  const char* env = std::getenv("LSA_RANDOM_FAULTS");
  return env == nullptr || std::string(env) != "0";
}

// Fails file mirror I/O at random (on the engine thread, so an episode stays reproducible up to
// the timing of async copies), and changes bytes of the mirror file behind the cache.
struct MirrorFaults {
  explicit MirrorFaults(uint64_t seed) : rng(seed) {}
  bool fail(lsa::MirrorIo op) {
    ++calls;
    const bool failed =
        std::uniform_int_distribution<int>(0, 99)(rng) < (op == lsa::MirrorIo::kRead ? 2 : 3);
    writes_failed += failed && op == lsa::MirrorIo::kWrite;
    reads_failed += failed && op == lsa::MirrorIo::kRead;
    return failed;
  }
  // Flips one byte at a random offset of the file (when it has any).
  void damage(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    const off_t size = ::lseek(fd, 0, SEEK_END);
    if (size > 0) {
      const auto at = static_cast<off_t>(std::uniform_int_distribution<int64_t>(0, size - 1)(rng));
      unsigned char b = 0;
      if (::pread(fd, &b, 1, at) == 1) {
        b ^= static_cast<unsigned char>(1 + std::uniform_int_distribution<int>(0, 254)(rng));
        if (::pwrite(fd, &b, 1, at) == 1) ++damaged;
      }
    }
    ::close(fd);
  }
  std::mt19937_64 rng;
  int64_t calls = 0, reads_failed = 0, writes_failed = 0, damaged = 0;
};

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

// A failed call left `h` as `before` was: lengths, resident sets and their slots, always. Any
// call may seal pages that were complete, and an async set in flight may have given way (both
// invisible, documented). Unless the mirror may fail (`strict`), the cache's other contents too:
// after an I/O error pages that no view lists may have been recalled or evicted.
template <class H>
void check_unchanged(const Light& before, const H& h, bool strict) {
  const Light after = light(h);
  if (before.length != after.length) H::fail_with("a failed call changed a length");
  for (const auto& [id, res] : before.resident) {
    if (after.resident.at(id) != res) H::fail_with("a failed call changed a resident set");
    for (int32_t p : res) {
      if (before.slots.at(id)[p] != after.slots.at(id)[p]) {
        H::fail_with("a failed call changed the slot of a resident page");
      }
    }
  }
  if (strict && before.slots != after.slots) H::fail_with("a failed call changed a slot");
  const lsa::Stats& a = before.stats;
  const lsa::Stats& b = after.stats;
  if (a.live_sequences != b.live_sequences || a.total_pages != b.total_pages ||
      a.resident_pages != b.resident_pages || a.refreshes != b.refreshes ||
      a.capacity_refusals != b.capacity_refusals ||
      (strict && (a.reserve_slots_used != b.reserve_slots_used ||
                  a.recalled_pages != b.recalled_pages || a.evictions != b.evictions))) {
    H::fail_with("a failed call changed the stats: " + lsa::testing::to_text(a) + " -> " +
                 lsa::testing::to_text(b));
  }
}

struct Totals {
  int64_t ops = 0, steps = 0, failed_capacity = 0, expected_errors = 0;
  int64_t evictions = 0, recalls = 0, refusals = 0, refreshes = 0, forks = 0, truncates = 0;
  int64_t fault_episodes = 0, io_failures = 0, recall_errors = 0, corrupt_recalls = 0;
  int64_t injected = 0, damaged = 0;
};

// One episode: a fresh random cache on StoreT and `num_ops` random calls; a quarter of the
// episodes use a file mirror when `file_mirrors` is set (on the host store with faults, unless
// LSA_RANDOM_FAULTS=0).
// A device store (cuda::CudaStore) has met no CUDA error: a step that returned kOk after a
// failed copy would otherwise go unseen. Host stores have no such error.
template <class StoreT>
void require_no_device_error(const StoreT& store) {
  if constexpr (requires { store.cuda_error(); }) {
    INFO("the store's first CUDA error: " << static_cast<int>(store.cuda_error()));
    REQUIRE(static_cast<int>(store.cuda_error()) == 0);
  }
}

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
  const std::string mirror = file ? dir.file("mirror.bin") : "";
  const lsa::CacheConfig config = random_config(rng, mode, mirror);
  constexpr bool kHost = std::is_same_v<StoreT, lsa::HostStore> && sizeof...(StoreOptions) == 0;
  const bool faulty = kHost && file && faults_enabled();
  MirrorFaults faults(seed ^ 0xFA017ull);
  INFO("config: " << describe(config) << (faulty ? " | faults" : ""));
  std::unique_ptr<H> owner;
  if constexpr (kHost) {
    lsa::HostStoreOptions options;
    if (faulty) options.fail_io = [&faults](lsa::MirrorIo op, int64_t) { return faults.fail(op); };
    owner = std::make_unique<H>(config, seed ^ 0x9E3779B97F4A7C15ull, options);
  } else {
    owner = std::make_unique<H>(config, seed ^ 0x9E3779B97F4A7C15ull, store_options...);
  }
  H& h = *owner;
  h.mirror_faults = faulty;
  totals.fault_episodes += faulty;
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

  // True when every live sequence but `except` lists at most kmax pages: then an append with
  // lsa-copied KV always finds its slots (the validated minimum reserve's promise), unless a
  // failed write left a page unsealed in its slot.
  auto within_budget = [&](SeqId except) {
    if (faults.writes_failed > 0) return false;
    for (const auto& [id, r] : h.ref.seqs) {
      if (id != except &&
          static_cast<int64_t>(h.cache.resident_pages(id).size()) > config.policy.kmax_pages) {
        return false;
      }
    }
    return true;
  };

  for (int op = 0; op < num_ops; ++op) {
    const int64_t kind = uni(0, 99);
    std::ostringstream what;
    Status s = Status::kOk;
    Status want = Status::kOk;  // kCapacityExceeded also allowed where noted
    bool capacity_ok = false;
    bool io_ok = faulty;  // kIoError and kCorrupt are allowed from calls that touch the mirror
    if (faulty && uni(0, 299) == 0) faults.damage(mirror);
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
        capacity_ok = mode_kv == Kv::kEngineWrites || !within_budget(id);
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
      require_no_device_error(h.cache.store());
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
    const bool io_failure = s == Status::kIoError || s == Status::kCorrupt;
    if (s != want && !(capacity_ok && s == Status::kCapacityExceeded) &&
        !(io_ok && io_failure && want == Status::kOk)) {
      H::fail_with("unexpected status " + std::string(lsa::to_string(s)) + ", wanted " +
                   std::string(lsa::to_string(want)));
    }
    if (s != Status::kOk) {
      totals.failed_capacity += s == Status::kCapacityExceeded;
      totals.io_failures += io_failure;
      totals.expected_errors += s != Status::kCapacityExceeded && !io_failure;
      check_unchanged(before, h, /*strict=*/!faulty);
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
  totals.recall_errors += st.recall_errors;
  totals.corrupt_recalls += st.corrupt_recalls;
  totals.injected += faults.reads_failed + faults.writes_failed;
  totals.damaged += faults.damaged;
  // Removing everything gives every slot and mirror cell back.
  for (SeqId id : live()) REQUIRE(h.remove(id) == Status::kOk);
  const lsa::Stats end = h.cache.stats();
  CHECK(end.reserve_slots_used == 0);
  CHECK(end.mirror_pages == 0);
}

// `episodes` episodes of `ops_per_episode` calls on StoreT (built with `store_options`), or as
// many episodes as LSA_RANDOM_OPS operations take; then checks the run exercised eviction,
// recall, refresh, fork, truncate and the error paths.
template <class StoreT, class... StoreOptions>
void run(RecallMode mode, int episodes, int ops_per_episode, bool file_mirrors,
         const StoreOptions&... store_options) {
  const uint64_t seed = base_seed();
  const int64_t ops = total_ops(int64_t{episodes} * ops_per_episode);
  episodes = static_cast<int>((ops + ops_per_episode - 1) / ops_per_episode);
  INFO("seed " << seed << " (set LSA_RANDOM_SEED to replay), " << ops << " operations");
  Totals totals;
  for (int e = 0; e < episodes; ++e) {
    const uint64_t episode_seed = seed + 0x1000193ull * static_cast<uint64_t>(e + 1);
    INFO("episode " << e << " (episode seed " << episode_seed << ")");
    run_episode<StoreT>(episode_seed, mode, ops_per_episode, file_mirrors, totals,
                        store_options...);
  }
  const std::string summary =
      "ops " + std::to_string(totals.ops) + " steps " + std::to_string(totals.steps) +
      " evictions " + std::to_string(totals.evictions) + " recalls " +
      std::to_string(totals.recalls) + " refusals " + std::to_string(totals.refusals) +
      " refreshes " + std::to_string(totals.refreshes) + " capacity failures " +
      std::to_string(totals.failed_capacity) + " expected errors " +
      std::to_string(totals.expected_errors) + " forks " + std::to_string(totals.forks) +
      " truncates " + std::to_string(totals.truncates) + " | fault episodes " +
      std::to_string(totals.fault_episodes) + " injected I/O faults " +
      std::to_string(totals.injected) + " bytes damaged " + std::to_string(totals.damaged) +
      " calls failed by I/O " + std::to_string(totals.io_failures) + " recall errors " +
      std::to_string(totals.recall_errors) + " corrupt recalls " +
      std::to_string(totals.corrupt_recalls);
  UNSCOPED_INFO(summary);
  if (std::getenv("LSA_RANDOM_OPS") != nullptr) WARN(summary);  // long runs report what they did
  // The run exercised what it is meant to.
  CHECK(totals.ops == int64_t{episodes} * ops_per_episode);
  if (file_mirrors && faults_enabled() && std::is_same_v<StoreT, lsa::HostStore> && episodes >= 8) {
    CHECK(totals.fault_episodes > 0);
    CHECK(totals.injected > 0);
  }
  CHECK(totals.evictions > totals.ops / 20);
  CHECK(totals.recalls > totals.ops / 50);
  CHECK(totals.refreshes > totals.steps / 4);
  CHECK(totals.forks > totals.ops / 200);
  CHECK(totals.truncates > totals.ops / 100);
  // (Capacity failures are rare now that a set in flight gives way and a prefill with KV streams;
  // cache_errors_test.cpp and capacity_test.cpp cover them.)
  CHECK(totals.expected_errors > totals.ops / 100);
}

}  // namespace lsa::testing::random_api
