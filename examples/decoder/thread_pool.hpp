// A fixed pool of worker threads for data-parallel loops (matrix products across output rows).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lsa_decode {

class ThreadPool {
 public:
  /// `num_threads` >= 1 counts the calling thread: 1 runs everything inline.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  /// Calls fn(begin, end) on disjoint ranges covering [0, n), in parallel, and returns when all
  /// are done. Ranges are multiples of `grain` (except the last). Which thread runs which range
  /// is not fixed, so fn must not depend on it. Call it from one thread at a time.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void work();
  // Runs chunks of the current job until none is left.
  void run_chunks();

  // A decode step runs hundreds of jobs of tens of microseconds, so waking sleeping threads for
  // each would cost as much as the work. Instead the caller publishes a job, the workers that are
  // awake (they poll for a while before they sleep) join it, and everyone takes chunks from a
  // shared counter; the caller runs whatever is left, so a descheduled worker delays nobody.
  //
  // state_: the job's generation (high bits), a "closed" bit, and the number of workers inside
  // the job (low bits). A worker joins with a compare-and-swap on an open job; the caller closes
  // the job once no worker is inside, so no late worker can touch the next job's fields.
  static constexpr uint64_t kClosed = uint64_t{1} << 16;
  static constexpr uint64_t kInside = kClosed - 1;
  static constexpr int kGenerationShift = 17;
  std::atomic<uint64_t> state_{kClosed};
  std::atomic<int64_t> next_{0};  // first index of the next chunk to take
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1;

  std::vector<std::thread> workers_;
  std::mutex mutex_;  // for sleeping only
  std::condition_variable wake_, done_;
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace lsa_decode
