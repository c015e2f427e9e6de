// detail::CopyJobs, the job and ticket bookkeeping of cuda::CudaStore, on a fake copy engine:
// completion never passes submission, jobs end in order whatever the engine reports, and a failed
// copy, submit or record marks its slots and tickets failed and leaves a sticky error.
#include "lsa/detail/copy_jobs.hpp"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "support/fake_copy_engine.hpp"

namespace {

using lsa::Status;
using lsa::detail::CopyJobs;
using lsa::detail::RecallTicket;
using lsa::testing::FakeCopyEngine;

constexpr int64_t kPageBytes = 16;
constexpr int32_t kSlots = 6;

// A mirror page per slot (filled with slot + 1) and a reserve to copy into (zeros).
struct Memory {
  std::vector<std::byte> mirror = std::vector<std::byte>(kPageBytes * kSlots);
  std::vector<std::byte> reserve = std::vector<std::byte>(kPageBytes * kSlots);
  Memory() {
    for (int32_t s = 0; s < kSlots; ++s) {
      for (int64_t i = 0; i < kPageBytes; ++i) mirror[s * kPageBytes + i] = std::byte(s + 1);
    }
  }
  // A recall of mirror page `slot` into reserve slot `slot`.
  lsa::detail::BatchCopy copy(int32_t slot, RecallTicket* ticket) {
    return {mirror.data() + slot * kPageBytes, reserve.data() + slot * kPageBytes, slot, ticket};
  }
  bool landed(int32_t slot) const { return reserve[slot * kPageBytes] == std::byte(slot + 1); }
};

// Adds recalls of `slots` to the open batch, counted on `ticket`.
void add(CopyJobs<FakeCopyEngine>& jobs, Memory& m, std::initializer_list<int32_t> slots,
         RecallTicket& ticket) {
  for (const int32_t s : slots) {
    ticket.remaining.fetch_add(1);
    jobs.add(m.copy(s, &ticket));
  }
}

}  // namespace

TEST_CASE("copy jobs: a job ends only when it and every earlier job have, in any reported order",
          "[copy_jobs]") {
  Memory m;
  FakeCopyEngine engine(kPageBytes);
  CopyJobs<FakeCopyEngine> jobs(engine, kSlots);
  RecallTicket t1, t2, t3;
  add(jobs, m, {0, 1}, t1);
  REQUIRE(jobs.open_job() == 1);
  REQUIRE(jobs.slot_job(0) == 1);
  REQUIRE_FALSE(jobs.done(1));  // the open batch is not done
  REQUIRE(jobs.submit() == 1);
  REQUIRE(t1.remaining.load() == 0);  // handed to the engine
  add(jobs, m, {2}, t2);
  REQUIRE(jobs.submit() == 2);
  add(jobs, m, {3}, t3);
  REQUIRE(jobs.submit() == 3);
  REQUIRE(jobs.submit() == 0);  // nothing open: no job

  engine.finish(3);  // out of order: 3 before 1 and 2
  REQUIRE_FALSE(jobs.done(3));
  REQUIRE_FALSE(jobs.done(1));
  engine.finish(1);
  REQUIRE(jobs.done(1));
  REQUIRE_FALSE(jobs.done(3));  // job 2 still runs
  REQUIRE(jobs.ended() == 1);
  engine.finish(2);
  REQUIRE(jobs.done(3));
  REQUIRE(jobs.ended() == 3);
  REQUIRE(jobs.ended() <= jobs.submitted());
  for (int32_t s : {0, 1, 2, 3}) {
    REQUIRE(m.landed(s));
    REQUIRE_FALSE(jobs.slot_failed(s));
  }
  REQUIRE(t1.failed.load() + t2.failed.load() + t3.failed.load() == 0);
  REQUIRE(jobs.status() == Status::kOk);
  REQUIRE(jobs.error() == 0);
}

TEST_CASE("copy jobs: a copy that fails marks its slots and tickets failed and the error stays",
          "[copy_jobs]") {
  Memory m;
  FakeCopyEngine engine(kPageBytes);
  CopyJobs<FakeCopyEngine> jobs(engine, kSlots);
  RecallTicket good, bad;
  add(jobs, m, {0}, good);
  REQUIRE(jobs.submit() == 1);
  add(jobs, m, {1, 2}, bad);
  REQUIRE(jobs.submit() == 2);
  engine.finish(1);
  engine.finish_failed(2);
  REQUIRE(jobs.done(2));  // ended: failed
  REQUIRE_FALSE(jobs.slot_failed(0));
  REQUIRE(jobs.slot_failed(1));
  REQUIRE(jobs.slot_failed(2));
  REQUIRE(good.failed.load() == 0);
  REQUIRE(bad.failed.load() == 2);
  REQUIRE(jobs.status() == Status::kDeviceError);
  REQUIRE(jobs.error() == FakeCopyEngine::kCopyError);

  // A later job that succeeds leaves the first error in place; a slot handed on is clean again.
  RecallTicket later;
  jobs.clear_slot(1);
  add(jobs, m, {1}, later);
  REQUIRE(jobs.submit() == 3);
  REQUIRE(jobs.note(FakeCopyEngine::kIssueError) == false);
  engine.finish(3);
  REQUIRE(jobs.done(3));
  REQUIRE_FALSE(jobs.slot_failed(1));
  REQUIRE(later.failed.load() == 0);
  REQUIRE(jobs.error() == FakeCopyEngine::kCopyError);
  REQUIRE(jobs.status() == Status::kDeviceError);
}

TEST_CASE("copy jobs: a submit that fails takes its number and ends failed, never past submission",
          "[copy_jobs]") {
  Memory m;
  FakeCopyEngine engine(kPageBytes);
  CopyJobs<FakeCopyEngine> jobs(engine, kSlots);
  RecallTicket before, failing, after;
  add(jobs, m, {0}, before);
  REQUIRE(jobs.submit() == 1);  // still running
  add(jobs, m, {1, 2}, failing);
  const uint64_t promised = jobs.open_job();  // what the cache's ready_at holds for this batch
  REQUIRE(promised == 2);
  engine.fail_next_issue = true;
  REQUIRE(jobs.submit() == 0);
  REQUIRE(jobs.submitted() == 2);  // the number is taken: no later job can look like it
  REQUIRE(failing.remaining.load() == 0);
  REQUIRE(failing.failed.load() == 2);
  REQUIRE(jobs.slot_failed(1));
  REQUIRE(jobs.slot_failed(2));
  REQUIRE(jobs.status() == Status::kDeviceError);
  REQUIRE(jobs.error() == FakeCopyEngine::kIssueError);
  // Job 2 ends only with job 1 (queue order), and then without asking the engine about it.
  REQUIRE_FALSE(jobs.done(promised));
  REQUIRE(jobs.ended() == 0);
  engine.finish(1);
  REQUIRE(jobs.done(promised));
  REQUIRE(jobs.ended() == 2);
  REQUIRE(jobs.ended() <= jobs.submitted());

  // The next job gets a new number, and it is not done before the engine says so.
  add(jobs, m, {3}, after);
  REQUIRE(jobs.submit() == 3);
  REQUIRE_FALSE(jobs.done(3));
  engine.finish(3);
  REQUIRE(jobs.done(3));
  REQUIRE(m.landed(3));
  REQUIRE_FALSE(m.landed(1));
  REQUIRE(before.failed.load() == 0);
  REQUIRE(after.failed.load() == 0);
}

TEST_CASE("copy jobs: an event record that fails ends its job failed, a wait on it returns",
          "[copy_jobs]") {
  Memory m;
  FakeCopyEngine engine(kPageBytes);
  CopyJobs<FakeCopyEngine> jobs(engine, kSlots);
  RecallTicket ticket;
  add(jobs, m, {4}, ticket);
  engine.fail_next_record = true;
  REQUIRE(jobs.submit() == 0);
  REQUIRE(jobs.submitted() == 1);
  REQUIRE(jobs.slot_failed(4));
  REQUIRE(ticket.failed.load() == 1);
  REQUIRE(ticket.remaining.load() == 0);
  REQUIRE(jobs.error() == FakeCopyEngine::kRecordError);
  jobs.wait(1);  // must not hang on an end mark that was never recorded
  REQUIRE(jobs.ended() == 1);

  // A job the store queued itself (a write-back) whose record fails: the same.
  engine.fail_next_record = true;
  REQUIRE(jobs.close_own(0) == 0);
  REQUIRE(jobs.submitted() == 2);
  REQUIRE(jobs.done(2));
  // And one whose own copy could not be queued.
  REQUIRE(jobs.close_own(FakeCopyEngine::kIssueError) == 0);
  REQUIRE(jobs.done(3));
  REQUIRE(jobs.error() == FakeCopyEngine::kRecordError);  // the first error stays
}

TEST_CASE("copy jobs: waits close the open batch, and end marks are reused only after their job",
          "[copy_jobs]") {
  Memory m;
  FakeCopyEngine engine(kPageBytes, /*ring=*/2);
  CopyJobs<FakeCopyEngine> jobs(engine, kSlots);
  RecallTicket ticket;
  add(jobs, m, {0}, ticket);
  jobs.wait(jobs.open_job());  // closes and waits for the open batch
  REQUIRE(jobs.submitted() == 1);
  REQUIRE(jobs.ended() == 1);
  REQUIRE(m.landed(0));
  // More jobs than end marks, none finished by the test: each record waits for the job whose mark
  // it reuses, so no mark is overwritten while its job runs.
  for (int i = 0; i < 6; ++i) REQUIRE(jobs.close_own(0) != 0);
  REQUIRE(engine.ring_overruns() == 0);
  REQUIRE(jobs.submitted() == 7);
  REQUIRE(jobs.ended() == 5);
  REQUIRE(jobs.ended() <= jobs.submitted());
  jobs.wait_all();
  REQUIRE(jobs.ended() == 7);
  REQUIRE(jobs.status() == Status::kOk);
}
