// A worker thread that copies recalled pages mirror -> reserve off the decode path.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "lsa/detail/mirror.hpp"
#include "lsa/detail/page_digest.hpp"
#include "lsa/status.hpp"

namespace lsa::detail {

/// Completion counter of one batch of recalls (one refresh of one sequence).
struct RecallTicket {
  std::atomic<int32_t> remaining{0};  ///< copies not finished yet
  std::atomic<int32_t> failed{0};     ///< copies that failed (file mirror I/O or a bad digest)
  std::atomic<int32_t> corrupt{0};    ///< of those, copies whose bytes did not match the digest
};

/// One page copy: a mirror cell into reserve memory.
struct RecallJob {
  const std::byte* src =
      nullptr;               ///< in-memory mirror cell, or nullptr to read `cell` from the file
  int64_t cell = -1;         ///< mirror cell
  std::byte* dst = nullptr;  ///< reserve slot memory
  RecallTicket* ticket = nullptr;  ///< decremented (release) when the copy is done
  std::atomic<uint8_t>* failed = nullptr;  ///< the slot's flag, set when the copy fails
  bool check = false;                      ///< compare the copied bytes with `digest`
  uint64_t digest = 0;                     ///< the page's digest when it was sealed
  bool fail = false;  ///< fail this copy as an I/O error would (fault injection)
};

/// Single background thread draining a FIFO of page copies.
class RecallWorker {
 public:
  /// `mirror` must outlive the worker.
  RecallWorker(const Mirror& mirror, int64_t page_bytes)
      : mirror_(mirror), page_bytes_(page_bytes), thread_([this] { run(); }) {}
  ~RecallWorker() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  RecallWorker(const RecallWorker&) = delete;
  RecallWorker& operator=(const RecallWorker&) = delete;

  /// Queues a copy; the ticket's `remaining` must already count it. Returns the job's number
  /// (1, 2, ...): copies finish in submission order, so job n is done once completed() >= n.
  uint64_t submit(const RecallJob& job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(job);
    }
    wake_.notify_one();
    return ++submitted_;
  }

  /// Jobs finished so far (acquire: their bytes and failure flags are visible once counted).
  uint64_t completed() const noexcept { return completed_.load(std::memory_order_acquire); }

  /// Blocks until job `job` (and every earlier one) has finished (lifecycle calls only).
  void wait_for(uint64_t job) const noexcept {
    while (completed() < job) std::this_thread::yield();
  }

  /// Blocks until every copy of `ticket` has finished (lifecycle calls only, never a step).
  static void wait(const RecallTicket& ticket) noexcept {
    while (ticket.remaining.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  }

 private:
  void run() {
    for (;;) {
      RecallJob job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = jobs_.front();
        jobs_.pop_front();
      }
      Status s = Status::kOk;
      if (job.fail) {
        s = Status::kIoError;
      } else if (job.src != nullptr) {
        std::memcpy(job.dst, job.src, static_cast<size_t>(page_bytes_));
      } else {
        s = mirror_.read_unchecked(job.cell, job.dst);
      }
      // The copy is checked where it landed: bytes that changed in the mirror are caught.
      if (s == Status::kOk && job.check && page_digest(job.dst, page_bytes_) != job.digest) {
        s = Status::kCorrupt;
      }
      if (s != Status::kOk) {
        job.failed->store(1, std::memory_order_relaxed);
        job.ticket->failed.fetch_add(1, std::memory_order_relaxed);
        if (s == Status::kCorrupt) job.ticket->corrupt.fetch_add(1, std::memory_order_relaxed);
      }
      job.ticket->remaining.fetch_sub(1, std::memory_order_release);
      // Last: once a job counts as completed its ticket may be freed (its sequence removed).
      completed_.fetch_add(1, std::memory_order_release);
    }
  }

  const Mirror& mirror_;
  int64_t page_bytes_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<RecallJob> jobs_;
  bool stop_ = false;
  uint64_t submitted_ = 0;              // engine thread only
  std::atomic<uint64_t> completed_{0};  // worker thread writes
  std::thread thread_;
};

}  // namespace lsa::detail
