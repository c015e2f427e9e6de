// A copy engine for detail::CopyJobs that runs on the CPU and fails or finishes jobs on demand.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <vector>

#include "lsa/detail/copy_jobs.hpp"

namespace lsa::testing {

/// Copies queued by issue() belong to the next job recorded; nothing moves until the test
/// finishes a job (finish) or a wait does (in queue order, as a device would). Jobs may be
/// finished in any order, with or without an error.
class FakeCopyEngine {
 public:
  static constexpr int kIssueError = 101;   ///< what a failed issue returns
  static constexpr int kRecordError = 102;  ///< what a failed record returns
  static constexpr int kCopyError = 103;    ///< what finish_failed makes a job end with

  /// Copies move `page_bytes` bytes; `ring` jobs' end marks exist at once.
  explicit FakeCopyEngine(int64_t page_bytes, uint64_t ring = 8)
      : page_bytes_(page_bytes), ring_(ring) {}

  /// The next issue fails (the copies are not queued).
  bool fail_next_issue = false;
  /// The next record fails (the copies issued since the last record never run).
  bool fail_next_record = false;

  int issue(std::span<const detail::BatchCopy> copies) noexcept {
    ++issues_;
    if (fail_next_issue) {
      fail_next_issue = false;
      return kIssueError;
    }
    queued_.insert(queued_.end(), copies.begin(), copies.end());
    return 0;
  }
  int record(uint64_t job) noexcept {
    if (fail_next_record) {
      fail_next_record = false;
      queued_.clear();
      return kRecordError;
    }
    // A real event would be overwritten while its job still runs: CopyJobs must never do that.
    if (job > ring_ && jobs_.contains(job - ring_) && !jobs_[job - ring_].ended) ++ring_overruns_;
    jobs_[job] = Job{std::move(queued_), false, 0};
    queued_.clear();
    return 0;
  }
  detail::JobResult query(uint64_t job) const noexcept {
    ++queries_;
    const auto it = jobs_.find(job);
    if (it == jobs_.end()) return {true, 0};  // never recorded: an event that was never recorded
    return {it->second.ended, it->second.error};
  }
  int wait(uint64_t job) const noexcept {
    for (auto& [number, j] : jobs_) {
      if (number > job) break;
      if (!j.ended) end(j, 0);
    }
    const auto it = jobs_.find(job);
    return it == jobs_.end() ? 0 : it->second.error;
  }
  uint64_t ring_size() const noexcept { return ring_; }

  /// Job `job` runs its copies and ends (whatever the state of earlier jobs).
  void finish(uint64_t job) { end(jobs_.at(job), 0); }
  /// Job `job` ends with kCopyError, its copies not run.
  void finish_failed(uint64_t job) { end(jobs_.at(job), kCopyError); }
  /// Every recorded job that has not ended runs and ends.
  void finish_all() {
    for (auto& [number, j] : jobs_) {
      if (!j.ended) end(j, 0);
    }
  }
  /// Recorded jobs that have not ended, oldest first.
  std::vector<uint64_t> running() const {
    std::vector<uint64_t> out;
    for (const auto& [number, j] : jobs_) {
      if (!j.ended) out.push_back(number);
    }
    return out;
  }
  /// Copies of recorded job `job`.
  size_t copies(uint64_t job) const { return jobs_.at(job).copies.size(); }
  /// Issue calls so far.
  int issues() const { return issues_; }
  /// Queries so far.
  int64_t queries() const { return queries_; }
  /// Records that reused the end mark of a job still running (must stay 0).
  int ring_overruns() const { return ring_overruns_; }

 private:
  struct Job {
    std::vector<detail::BatchCopy> copies;
    bool ended = false;
    int error = 0;
  };

  void end(Job& j, int error) const noexcept {
    if (error == 0) {
      for (const detail::BatchCopy& c : j.copies)
        std::memcpy(c.dst, c.src, static_cast<size_t>(page_bytes_));
    }
    j.ended = true;
    j.error = error;
  }

  int64_t page_bytes_;
  uint64_t ring_;
  std::vector<detail::BatchCopy> queued_;
  mutable std::map<uint64_t, Job> jobs_;
  int issues_ = 0;
  mutable int64_t queries_ = 0;
  int ring_overruns_ = 0;
};

}  // namespace lsa::testing
