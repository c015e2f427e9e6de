// Copy jobs of a store whose copies run on a device queue: numbering, completion, failure.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lsa/detail/recall_worker.hpp"
#include "lsa/status.hpp"

namespace lsa::detail {

/// One recall of an open batch: a mirror cell copied into a reserve slot.
struct BatchCopy {
  const std::byte* src = nullptr;  ///< mirror cell
  std::byte* dst = nullptr;        ///< reserve slot memory
  int32_t slot = -1;               ///< that slot
  RecallTicket* ticket = nullptr;  ///< the refresh it belongs to (nullptr: a sync recall)
};

/// What a copy engine says about a recorded job.
struct JobResult {
  bool done = false;  ///< the job has ended (with success when error == 0)
  int error = 0;      ///< the engine's error code (0: none)
};

/// The device side of CopyJobs: queues copies and marks job ends, all in one queue (CUDA: the copy
/// stream and a ring of events; tests: a fake that fails and completes jobs on demand). Error codes
/// are the engine's (cudaError_t for CUDA), 0 meaning success.
template <class E>
concept CopyEngine = requires(E& e, const E& ce, std::span<const BatchCopy> copies, uint64_t job) {
  // Queues the copies of a batch; 0 or the error that kept them from being queued.
  { e.issue(copies) }
  noexcept->std::same_as<int>;
  // Marks the end of job `job` after everything queued so far; 0 or an error.
  { e.record(job) }
  noexcept->std::same_as<int>;
  // Whether recorded job `job` has ended, and how; never blocks.
  { ce.query(job) }
  noexcept->std::same_as<JobResult>;
  // Blocks until recorded job `job` has ended; 0 or its error.
  { ce.wait(job) }
  noexcept->std::same_as<int>;
  // Jobs whose ends can be recorded at once (job j reuses job j - ring_size's mark).
  { ce.ring_size() }
  noexcept->std::same_as<uint64_t>;
};

/// The job and ticket bookkeeping of a device store, host-only so that it is tested on every
/// machine with a fake engine. Jobs are numbered 1, 2, ... in the order they close; a job that
/// could not be queued or recorded still takes its number (slots and refreshes were promised it)
/// and ends failed at once. Invariants:
///  - ended() <= submitted(): no job counts as ended before it was handed to the engine;
///  - a job counts as ended only when it and every earlier job have ended (an engine may report
///    them out of order);
///  - a failed job marks the slots it last touched failed (their bytes are not the page's) and
///    counts one failure on the ticket of each recall in it;
///  - the first error is sticky: status() stays kDeviceError, error() names it.
template <CopyEngine Engine>
class CopyJobs {
 public:
  /// Bookkeeping for `num_slots` slots (engine.ring_size() >= 1); allocates all a step needs.
  CopyJobs(Engine& engine, int32_t num_slots)
      : engine_(engine),
        slot_job_(static_cast<size_t>(num_slots), 0),
        slot_failed_(static_cast<size_t>(num_slots), 0),
        slot_ticket_(static_cast<size_t>(num_slots), nullptr),
        unrecorded_(static_cast<size_t>(engine.ring_size()), 0) {
    batch_.reserve(static_cast<size_t>(num_slots));
  }
  CopyJobs(const CopyJobs&) = delete;
  CopyJobs& operator=(const CopyJobs&) = delete;

  /// Jobs closed so far (numbers 1..submitted()).
  uint64_t submitted() const noexcept { return submitted_; }
  /// Every job up to this one has ended (done or failed).
  uint64_t ended() const noexcept { return ended_; }
  /// The number the open batch will get when it closes.
  uint64_t open_job() const noexcept { return submitted_ + 1; }
  /// Recalls in the open batch.
  std::span<const BatchCopy> batch() const noexcept { return batch_; }
  /// The first engine error met (0: none); it stays.
  int error() const noexcept { return error_; }
  /// kOk, or kDeviceError once any job or engine call has failed.
  Status status() const noexcept { return error_ == 0 ? Status::kOk : Status::kDeviceError; }
  /// Records an error met outside a job (a call the store made itself); true when `error` is 0.
  bool note(int error) const noexcept {
    if (error != 0 && error_ == 0) error_ = error;
    return error == 0;
  }

  /// Job that last touched `slot` (0: none).
  uint64_t slot_job(int32_t slot) const noexcept { return slot_job_[slot]; }
  /// True when the last copy into `slot` failed: its bytes are not the page's.
  bool slot_failed(int32_t slot) const noexcept { return slot_failed_[slot] != 0; }
  /// The slot changes hands: forget its failure.
  void clear_slot(int32_t slot) noexcept {
    slot_failed_[slot] = 0;
    slot_ticket_[slot] = nullptr;
  }
  /// A copy out of or into `slot` (not a recall: a write-back) belongs to job `job`.
  void touch_slot(int32_t slot, uint64_t job) noexcept { slot_job_[slot] = job; }

  /// Adds a recall to the open batch (its ticket's `remaining` already counts it); the slot's job
  /// becomes open_job(). Needs room: at most one recall per slot per batch.
  void add(const BatchCopy& copy) noexcept {
    batch_.push_back(copy);  // capacity num_slots, reserved at construction
    slot_job_[copy.slot] = open_job();
    slot_failed_[copy.slot] = 0;
    slot_ticket_[copy.slot] = copy.ticket;
  }

  /// Closes the open batch as one job (nothing when it is empty): issues its copies, records the
  /// job's end, hands every recall to the device (tickets' `remaining` drop). Returns the job, or
  /// 0 when the batch was empty or the job failed (then its slots and tickets are marked failed).
  uint64_t submit() noexcept {
    if (batch_.empty()) return 0;
    const uint64_t job = close(engine_.issue(batch_));
    for (const BatchCopy& c : batch_) {
      if (c.ticket != nullptr) c.ticket->remaining.fetch_sub(1, std::memory_order_release);
    }
    batch_.clear();
    return job;
  }

  /// Closes a job whose copies the store queued itself (`issue_error`: how that went), after the
  /// open batch. Returns the job, or 0 when it failed (it still took its number).
  uint64_t close_own(int issue_error) noexcept {
    (void)submit();
    return close(issue_error);
  }

  /// True when jobs up to `job` have ended (engine queries, no wait); false for the open batch.
  bool done(uint64_t job) const noexcept {
    if (job > submitted_) return false;
    while (ended_ < job) {
      const uint64_t next = ended_ + 1;
      if (!unrecorded(next)) {
        const JobResult r = engine_.query(next);
        if (!r.done) return false;
        end_job(next, r.error);
      }
      ended_ = next;
    }
    return true;
  }

  /// Blocks until jobs up to `job` have ended, closing the open batch first when `job` is it.
  void wait(uint64_t job) noexcept {
    if (job > submitted_) (void)submit();
    if (job > submitted_) job = submitted_;
    while (ended_ < job) {
      const uint64_t next = ended_ + 1;
      if (!unrecorded(next)) end_job(next, engine_.wait(next));
      ended_ = next;
    }
  }

  /// Blocks until every job has ended.
  void wait_all() noexcept { wait(submitted_); }

 private:
  // Gives the next number to a job whose copies were queued with `issue_error` and records its
  // end. A job that fails here ends failed (the engine holds no mark of it to ask about later).
  uint64_t close(int issue_error) noexcept {
    const uint64_t job = submitted_ + 1;
    const uint64_t ring = unrecorded_.size();
    // Job `job` reuses the end mark of job - ring: that one must have ended first (rare).
    if (job > ring) wait(job - ring);
    const int error = issue_error != 0 ? issue_error : engine_.record(job);
    submitted_ = job;
    unrecorded_[job % ring] = error != 0;
    if (error == 0) return job;
    end_job(job, error);
    return 0;
  }

  bool unrecorded(uint64_t job) const noexcept {
    return unrecorded_[job % unrecorded_.size()] != 0;
  }

  // Job `job` ended with `error`: a failed job's slots hold no page's bytes, its recalls failed.
  void end_job(uint64_t job, int error) const noexcept {
    if (note(error)) return;
    for (size_t s = 0; s < slot_job_.size(); ++s) {
      if (slot_job_[s] != job) continue;
      slot_failed_[s] = 1;
      if (slot_ticket_[s] != nullptr)
        slot_ticket_[s]->failed.fetch_add(1, std::memory_order_relaxed);
      slot_ticket_[s] = nullptr;
    }
  }

  Engine& engine_;
  std::vector<BatchCopy> batch_;  // open batch
  std::vector<uint64_t> slot_job_;
  mutable std::vector<uint8_t> slot_failed_;
  mutable std::vector<RecallTicket*> slot_ticket_;  // ticket of the last recall into each slot
  uint64_t submitted_ = 0;
  mutable uint64_t ended_ = 0;
  std::vector<uint8_t> unrecorded_;  // [ring]: job j's entry j % ring is 1 when it failed to close
  mutable int error_ = 0;
};

}  // namespace lsa::detail
