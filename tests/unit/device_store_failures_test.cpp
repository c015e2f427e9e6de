// The cache on a store with cuda::CudaStore's copy-job rules (FakeDeviceStore, a fake copy engine):
// jobs that finish in any order lose nothing; a recall copy, submit or event record that fails
// fails the step with kDeviceError, the serving set stays, and every later call says so.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "support/cache_harness.hpp"
#include "support/fake_device_store.hpp"  // before the harness: read_slot / write_slot overloads

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::testing::FakeCopyEngine;
using lsa::testing::FakeDeviceStore;
using Harness = lsa::testing::BasicHarness<FakeDeviceStore>;

// Four sequences, refresh every step, a reserve two slots above its minimum: most refreshes
// recall and evict.
lsa::CacheConfig fake_config(RecallMode mode) {
  lsa::CacheConfig c = lsa::testing::small_config();
  c.max_tokens = 512;
  c.recall_mode = mode;
  c.policy.kmax_pages = 5;
  c.num_slots = c.max_sequences * c.policy.kmax_pages + 2;
  return c;
}

const std::vector<SeqId> kIds = {1, 2, 3, 4};

// Four sequences with history; steps (query signs alternating, so selections flip) until a
// recall job is in flight.
void start(Harness& h) {
  for (const SeqId id : kIds) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append_in_pieces(id, 90, 7) == Status::kOk);
  }
  FakeCopyEngine& engine = h.cache.store().engine();
  for (int step = 0; step < 20 && engine.running().empty(); ++step) {
    REQUIRE(h.step(kIds, step % 2 == 0 ? 1.0f : -1.0f) == Status::kOk);
  }
  REQUIRE_FALSE(engine.running().empty());
}

// What the failing calls must not change: every sequence's serving set and length.
std::vector<std::vector<int32_t>> serving(const Harness& h) {
  std::vector<std::vector<int32_t>> out;
  for (const SeqId id : kIds) {
    const auto res = h.cache.resident_pages(id);
    out.emplace_back(res.begin(), res.end());
    out.back().push_back(static_cast<int32_t>(h.cache.length(id)));
  }
  return out;
}

// Every call that depends on the device says kDeviceError and changes nothing.
void every_call_fails(Harness& h) {
  const auto before = h.snapshot();
  for (int i = 0; i < 3; ++i) REQUIRE(h.step(kIds, 1.0f) == Status::kDeviceError);
  REQUIRE(h.append(1, 1) == Status::kDeviceError);
  REQUIRE(h.cache.commit(2) == Status::kDeviceError);
  REQUIRE(h.cache.truncate(3, 4) == Status::kDeviceError);
  REQUIRE(h.cache.fork(4, 9) == Status::kDeviceError);
  CHECK(before.diff(h.snapshot()) == "");
  h.cache.store().engine().finish_all();  // even once the device has drained
  REQUIRE(h.step(kIds, 1.0f) == Status::kDeviceError);
  REQUIRE(h.remove(1) == Status::kOk);  // releasing still works
}

}  // namespace

TEST_CASE("fake device store: jobs finished in random order lose nothing and never fail a step",
          "[device_jobs]") {
  for (const RecallMode mode : {RecallMode::kSync, RecallMode::kAsync}) {
    INFO((mode == RecallMode::kSync ? "sync" : "async"));
    Harness h(fake_config(mode), 11);
    for (const SeqId id : kIds) {
      REQUIRE(h.add(id) == Status::kOk);
      REQUIRE(h.append_in_pieces(id, 60, 9) == Status::kOk);
    }
    FakeCopyEngine& engine = h.cache.store().engine();
    std::mt19937_64 rng(7);
    int64_t finished_out_of_order = 0;
    for (int step = 0; step < 400; ++step) {
      INFO("step " << step);
      std::vector<uint64_t> running = engine.running();
      std::shuffle(running.begin(), running.end(), rng);
      running.resize(running.size() / 2 + (step % 3 == 0 ? running.size() % 2 : 0));
      for (const uint64_t job : running) {
        finished_out_of_order += job != engine.running().front();
        engine.finish(job);
      }
      if (step % 5 == 0) REQUIRE(h.append(kIds[step % kIds.size()], 1 + step % 3) == Status::kOk);
      REQUIRE(h.step(kIds, step % 2 == 0 ? 1.0f : -1.0f) ==
              Status::kOk);  // checks the view's bytes
      REQUIRE(h.cache.store().status() == Status::kOk);
      REQUIRE(h.cache.store().jobs().ended() <= h.cache.store().jobs().submitted());
      h.check_state();
    }
    engine.finish_all();
    h.check_all();
    REQUIRE(h.cache.stats().evictions > 100);
    REQUIRE(engine.ring_overruns() == 0);
    if (mode == RecallMode::kAsync) REQUIRE(finished_out_of_order > 5);
  }
}

TEST_CASE("fake device store: a recall copy that fails fails the step and the serving set stays",
          "[device_jobs]") {
  Harness h(fake_config(RecallMode::kAsync), 3);
  start(h);
  FakeCopyEngine& engine = h.cache.store().engine();
  const auto before = serving(h);
  for (const uint64_t job : engine.running()) engine.finish_failed(job);
  REQUIRE(h.step(kIds, 1.0f) == Status::kDeviceError);  // before: a failed copy counted as done
  REQUIRE(serving(h) == before);
  REQUIRE(h.cache.store().status() == Status::kDeviceError);
  every_call_fails(h);
}

TEST_CASE("fake device store: a recall submit that fails fails its step and every later one",
          "[device_jobs]") {
  for (const RecallMode mode : {RecallMode::kSync, RecallMode::kAsync}) {
    INFO((mode == RecallMode::kSync ? "sync" : "async"));
    Harness h(fake_config(mode), 4);
    for (const SeqId id : kIds) {
      REQUIRE(h.add(id) == Status::kOk);
      REQUIRE(h.append_in_pieces(id, 90, 7) == Status::kOk);
    }
    FakeCopyEngine& engine = h.cache.store().engine();
    engine.finish_all();
    // The next step that recalls anything fails to issue its batch.
    engine.fail_next_issue = true;
    Status s = Status::kOk;
    for (int step = 0; step < 20 && s == Status::kOk; ++step) {
      const int issues = engine.issues();
      s = h.step_unchecked(kIds, std::vector<float>(kIds.size(), step % 2 == 0 ? 1.0f : -1.0f));
      if (engine.issues() == issues) REQUIRE(s == Status::kOk);
    }
    REQUIRE(s == Status::kDeviceError);
    REQUIRE(h.cache.store().jobs().ended() <= h.cache.store().jobs().submitted());
    // Before: completion passed submission, and the set in flight stayed pending while steps said
    // kOk. Now no step says kOk again, and no set swaps in.
    const auto before = serving(h);
    for (int i = 0; i < 5; ++i) REQUIRE(h.step(kIds, 1.0f) == Status::kDeviceError);
    REQUIRE(serving(h) == before);
    every_call_fails(h);
  }
}

TEST_CASE("fake device store: an event record that fails fails the step, the serving set stays",
          "[device_jobs]") {
  Harness h(fake_config(RecallMode::kAsync), 5);
  for (const SeqId id : kIds) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append_in_pieces(id, 90, 7) == Status::kOk);
  }
  FakeCopyEngine& engine = h.cache.store().engine();
  engine.finish_all();
  engine.fail_next_record = true;  // the next job: a recall batch or a page's write-back
  Status s = Status::kOk;
  for (int step = 0; step < 20 && s == Status::kOk; ++step) {
    s = h.step_unchecked(kIds, std::vector<float>(kIds.size(), step % 2 == 0 ? 1.0f : -1.0f));
    if (s == Status::kOk) s = h.append(kIds[step % kIds.size()], 4);  // seals pages: write-backs
  }
  REQUIRE(s == Status::kDeviceError);
  REQUIRE_FALSE(engine.fail_next_record);
  const auto before = serving(h);
  REQUIRE(h.step(kIds, 1.0f) == Status::kDeviceError);
  REQUIRE(serving(h) == before);
  every_call_fails(h);
}
