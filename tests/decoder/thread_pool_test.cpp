// The decoder's thread pool: every index visited exactly once, in grain-sized ranges, for any
// thread count; repeated jobs reuse the same workers (this test also runs under TSan).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <vector>

#include "kernels.hpp"
#include "thread_pool.hpp"

TEST_CASE("thread pool: parallel_for covers 0 to n once in grain multiples", "[decoder][threads]") {
  for (const int threads : {1, 2, 3, 8}) {
    lsa_decode::ThreadPool pool(threads);
    CHECK(pool.num_threads() == threads);
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{1000}}) {
      for (const int64_t grain : {int64_t{1}, int64_t{16}}) {
        INFO("threads " << threads << " n " << n << " grain " << grain);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<bool> aligned{true};
        pool.parallel_for(n, grain, [&](int64_t begin, int64_t end) {
          if (begin % grain != 0 || begin >= end) aligned = false;
          for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
        });
        CHECK(aligned.load());
        for (int64_t i = 0; i < n; ++i) REQUIRE(hits[i].load() == 1);
      }
    }
  }
}

TEST_CASE("thread pool: matmul gives the same bits for any thread count", "[decoder][threads]") {
  const int64_t n = 5, d_in = 37, d_out = 70;
  std::vector<float> x(n * d_in), w(d_out * d_in);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 97) / 97.0f - 0.5f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 104729) % 89) / 89.0f - 0.5f;
  std::vector<float> want(n * d_out);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < d_out; ++o) {
      double s = 0.0;
      for (int64_t k = 0; k < d_in; ++k) s += double(x[i * d_in + k]) * w[o * d_in + k];
      want[i * d_out + o] = static_cast<float>(s);
    }
  }
  std::vector<float> first;
  for (const int threads : {1, 2, 4}) {
    lsa_decode::ThreadPool pool(threads);
    std::vector<float> y(n * d_out);
    lsa_decode::matmul(pool, x.data(), n, d_in, w.data(), d_out, y.data());
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::abs(y[i] - want[i]) < 1e-4f);
    if (first.empty()) first = y;
    CHECK(y == first);
  }
}
