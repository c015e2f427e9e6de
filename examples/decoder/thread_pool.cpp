#include "thread_pool.hpp"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace lsa_decode {
namespace {

// Polls before a thread blocks: about 50 microseconds (a pause is about 25 ns on current x86),
// longer than the gaps between the jobs of one decode step, short enough not to hold a core
// between steps.
constexpr int kSpins = 2000;

// Chunks per thread: enough for threads that start late or run slow to even out.
constexpr int64_t kChunksPerThread = 4;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  for (int i = 1; i < std::max(num_threads, 1); ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  {
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  }
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  for (;;) {
    const int64_t begin = next_.fetch_add(job_chunk_, std::memory_order_relaxed);
    if (begin >= job_n_) return;
    (*job_)(begin, std::min(job_n_, begin + job_chunk_));
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  const int64_t parts = num_threads() * kChunksPerThread;
  const int64_t grains = (n + grain - 1) / grain;
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = std::max<int64_t>(1, (grains + parts - 1) / parts) * grain;
  next_.store(0, std::memory_order_relaxed);
  // Open the job: a new generation, nobody inside. The job's fields above are published by this
  // release and read by workers after their acquiring compare-and-swap.
  const uint64_t generation = (state_.load(std::memory_order_relaxed) >> kGenerationShift) + 1;
  state_.store(generation << kGenerationShift);
  if (sleeping_workers_.load() > 0) {
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  }
  run_chunks();
  // Every chunk is taken; wait for the workers still inside, then close the job.
  for (int spin = 0;; ++spin) {
    uint64_t s = state_.load(std::memory_order_acquire);
    if ((s & kInside) == 0 && state_.compare_exchange_strong(s, s | kClosed)) break;
    if (spin < kSpins) {
      cpu_relax();
      continue;
    }
    std::unique_lock lock(mutex_);
    caller_sleeping_.store(true);
    done_.wait(lock, [&] { return (state_.load() & kInside) == 0; });
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
}

void ThreadPool::work() {
  uint64_t seen = 0;  // the last generation this worker joined or saw closed
  for (;;) {
    // Wait for an open job of a new generation, polling first, then sleeping.
    uint64_t s = state_.load(std::memory_order_acquire);
    const auto is_new = [&](uint64_t st) {
      return (st & kClosed) == 0 && (st >> kGenerationShift) != seen;
    };
    for (int spin = 0; spin < kSpins && !is_new(s) && !stop_.load(std::memory_order_relaxed);
         ++spin) {
      cpu_relax();
      s = state_.load(std::memory_order_acquire);
    }
    if (!is_new(s) && !stop_.load()) {
      std::unique_lock lock(mutex_);
      sleeping_workers_.fetch_add(1);
      wake_.wait(lock, [&] { return stop_.load() || is_new(state_.load()); });
      sleeping_workers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    // Join: one more inside, only while the job is still open and the same.
    s = state_.load(std::memory_order_acquire);
    if (!is_new(s) || !state_.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel)) {
      continue;  // closed meanwhile (the caller did it all), or a race: look again
    }
    seen = s >> kGenerationShift;
    run_chunks();
    if (((state_.fetch_sub(1) - 1) & kInside) == 0 && caller_sleeping_.load()) {
      std::lock_guard lock(mutex_);
      done_.notify_one();
    }
  }
}

}  // namespace lsa_decode
