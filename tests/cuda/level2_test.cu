// lsa::cuda::level2_select against the host reference lsa::level2_select, byte for byte.
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "lsa/cuda/level2.hpp"
#include "lsa/level2.hpp"
#include "support/gpu.hpp"

namespace {

using lsa::cuda::testing::DeviceArray;

enum class Logits { kNormal, kFewValues, kConstant, kSpecial };

// A batch in HostBatchTable form, with fixed strides so that another batch of the same shape can
// replace it in the same device buffers.
struct HostBatch {
  std::vector<int32_t> offsets;
  std::vector<int32_t> pages;
  std::vector<int32_t> slots;
  std::vector<int64_t> num_tokens;
  std::vector<float> logits;
  int64_t slots_stride = 0;
  int64_t logits_stride = 0;

  lsa::HostBatchTable table() const { return {offsets, pages, slots, slots_stride, num_tokens}; }
};

float from_bits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

float random_logit(std::mt19937& rng, Logits mode) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  switch (mode) {
    case Logits::kNormal:
      return normal(rng);
    case Logits::kFewValues:
      return std::round(normal(rng)) * 0.5f;
    case Logits::kConstant:
      return 0.25f;
    case Logits::kSpecial: {
      // Both NaN signs, infinities, signed zeros, the extremes and denormals: every corner of the
      // order-preserving key (-inf and -FLT_MAX have keys whose leading byte is 0xFF).
      const float special[] = {from_bits(0x7FC00000u),
                               from_bits(0xFFC00001u),
                               INFINITY,
                               -INFINITY,
                               0.0f,
                               -0.0f,
                               -FLT_MAX,
                               FLT_MAX,
                               FLT_TRUE_MIN,
                               -FLT_TRUE_MIN};
      const int r = std::uniform_int_distribution<int>(0, 19)(rng);
      return r < 10 ? special[r] : normal(rng);
    }
  }
  return 0.0f;
}

// `batch` sequences of up to max_pages pages (last page partial at random), each page resident
// with a probability drawn from [resident_min, resident_max], slots a random permutation of a
// larger reserve.
HostBatch random_batch(std::mt19937& rng, lsa::Chunker chunker, int32_t batch, int64_t max_pages,
                       double resident_min, double resident_max, Logits mode) {
  HostBatch h;
  h.slots_stride = std::max<int64_t>(max_pages, 1);
  h.logits_stride = max_pages * chunker.page_chunks();
  h.offsets.push_back(0);
  std::vector<int32_t> reserve(static_cast<size_t>(2 * max_pages + 8));
  for (int32_t b = 0; b < batch; ++b) {
    const int64_t num_pages = std::uniform_int_distribution<int64_t>(0, max_pages)(rng);
    const int64_t num_tokens =
        num_pages == 0 ? 0
                       : (num_pages - 1) * chunker.page_tokens() +
                             std::uniform_int_distribution<int64_t>(1, chunker.page_tokens())(rng);
    h.num_tokens.push_back(num_tokens);
    std::bernoulli_distribution keep(
        std::uniform_real_distribution<double>(resident_min, resident_max)(rng));
    for (int64_t p = 0; p < num_pages; ++p) {
      if (keep(rng)) h.pages.push_back(static_cast<int32_t>(p));
    }
    h.offsets.push_back(static_cast<int32_t>(h.pages.size()));
    std::iota(reserve.begin(), reserve.end(), 0);
    std::shuffle(reserve.begin(), reserve.end(), rng);
    h.slots.insert(h.slots.end(), reserve.begin(), reserve.begin() + h.slots_stride);
    for (int64_t c = 0; c < h.logits_stride; ++c) {
      // Logits past the history are there but must never be read: make them the best.
      h.logits.push_back(c < chunker.num_chunks(num_tokens) ? random_logit(rng, mode) : 1e30f);
    }
  }
  return h;
}

// Replaces sequence b's resident pages.
void set_pages(HostBatch& h, size_t b, const std::vector<int32_t>& pages) {
  const auto first = h.pages.begin() + h.offsets[b];
  const auto delta = static_cast<int32_t>(pages.size()) - (h.offsets[b + 1] - h.offsets[b]);
  h.pages.erase(first, h.pages.begin() + h.offsets[b + 1]);
  h.pages.insert(h.pages.begin() + h.offsets[b], pages.begin(), pages.end());
  for (size_t i = b + 1; i < h.offsets.size(); ++i) h.offsets[i] += delta;
}

// Device buffers of fixed capacity holding a HostBatch (rewritten in place by write()).
struct DeviceBatch {
  DeviceBatch(int32_t batch, size_t page_capacity, int64_t slots_stride, int64_t logits_stride,
              int32_t k)
      : offsets(static_cast<size_t>(batch) + 1),
        pages(std::max<size_t>(page_capacity, 1)),
        slots(static_cast<size_t>(batch * slots_stride)),
        num_tokens(static_cast<size_t>(batch)),
        logits(static_cast<size_t>(batch * logits_stride)),
        out(static_cast<size_t>(batch) * k + 1),
        status(1),
        k(k) {
    table = {batch, offsets.get(), pages.get(), slots.get(), slots_stride, num_tokens.get()};
    logits_stride_ = logits_stride;
  }

  void write(const HostBatch& h) {
    REQUIRE(h.pages.size() <= pages.size());
    copy(offsets, h.offsets);
    copy(pages, h.pages);
    copy(slots, h.slots);
    copy(num_tokens, h.num_tokens);
    copy(logits, h.logits);
    out.fill_bytes(0x5A);
    status.fill_bytes(0x5A);
  }

  lsa::cuda::CudaError run(lsa::Chunker chunker, cudaStream_t stream = nullptr) {
    return lsa::cuda::level2_select(table, logits.get(), logits_stride_, chunker, k, out.get(),
                                    status.get(), stream);
  }

  template <class T>
  static void copy(DeviceArray<T>& to, const std::vector<T>& from) {
    REQUIRE(from.size() <= to.size());
    if (!from.empty()) {
      LSA_CUDA_REQUIRE(
          cudaMemcpy(to.get(), from.data(), from.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
  }

  DeviceArray<int32_t> offsets, pages, slots;
  DeviceArray<int64_t> num_tokens;
  DeviceArray<float> logits;
  DeviceArray<int32_t> out, status;
  int32_t k;
  int64_t logits_stride_ = 0;
  lsa::cuda::DeviceBatchTable table;
};

// The host's rows (and status) for the same batch, with the same poisoned element past the rows.
std::vector<int32_t> host_rows(const HostBatch& h, lsa::Chunker chunker, int32_t k,
                               lsa::Status& status) {
  std::vector<int32_t> out(h.num_tokens.size() * static_cast<size_t>(k) + 1, 0x5A5A5A5A);
  status = lsa::level2_select(h.table(), h.logits, h.logits_stride, chunker, k,
                              std::span(out).first(out.size() - 1));
  return out;
}

void require_same(const HostBatch& h, DeviceBatch& d, lsa::Chunker chunker) {
  lsa::Status host_status;
  const std::vector<int32_t> expected = host_rows(h, chunker, d.k, host_status);
  const std::vector<int32_t> got = d.out.download();
  REQUIRE(d.status.download()[0] == static_cast<int32_t>(host_status));
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("row " << i / static_cast<size_t>(d.k) << " column " << i % static_cast<size_t>(d.k));
    REQUIRE(got[i] == expected[i]);
  }
}

struct Shape {
  lsa::Chunker chunker;
  int32_t batch;
  int64_t max_pages;
  double resident_min;
  double resident_max;
};

}  // namespace

TEST_CASE("level2_select on the device writes what the host reference writes", "[gpu][level2]") {
  LSA_REQUIRE_GPU();
  INFO("device: " << lsa::cuda::testing::device_name());
  // From a few candidates (fewer than most k) to 4096 resident pages of 16 chunks (65536
  // candidates: more than the shared-memory key cache holds, so part is read again each pass).
  const Shape shapes[] = {{{1, 16}, 5, 4096, 0.7, 1.0},
                          {{1, 16}, 17, 300, 0.0, 1.0},
                          {{2, 4}, 9, 40, 0.2, 1.0},
                          {{3, 5}, 3, 2000, 0.3, 0.9},
                          {{1, 1}, 4, 9000, 0.5, 1.0}};
  uint32_t seed = 100;
  for (const Shape& shape : shapes) {
    for (const Logits mode :
         {Logits::kNormal, Logits::kFewValues, Logits::kConstant, Logits::kSpecial}) {
      std::mt19937 rng(seed++);
      const HostBatch h = random_batch(rng, shape.chunker, shape.batch, shape.max_pages,
                                       shape.resident_min, shape.resident_max, mode);
      for (const int32_t k : {1, 7, 512, 1025, 2048, 4096}) {
        INFO("chunker " << shape.chunker.chunk_tokens() << "x" << shape.chunker.page_chunks()
                        << " batch " << shape.batch << " max pages " << shape.max_pages << " mode "
                        << static_cast<int>(mode) << " k " << k);
        DeviceBatch d(shape.batch, h.pages.size(), h.slots_stride, h.logits_stride, k);
        d.write(h);
        LSA_CUDA_OK(d.run(shape.chunker));
        require_same(h, d, shape.chunker);
      }
    }
  }
}

TEST_CASE("level2_select reports unreadable resident sets and writes -1 rows", "[gpu][level2]") {
  LSA_REQUIRE_GPU();
  const lsa::Chunker chunker(1, 16);
  std::mt19937 rng(5);
  // Six full histories of 64 pages; rows 0, 2, 4 hold pages 0, 3, 5, 63.
  HostBatch good = random_batch(rng, chunker, 6, 64, 0.5, 1.0, Logits::kNormal);
  for (size_t b = 0; b < 6; ++b) {
    good.num_tokens[b] = 64 * 16;
    if (b % 2 == 0) set_pages(good, b, {0, 3, 5, 63});
  }
  const auto check = [&](const HostBatch& h, lsa::Status expected) {
    lsa::Status host_status;
    (void)host_rows(h, chunker, 9, host_status);
    REQUIRE(host_status == expected);
    DeviceBatch d(6, h.pages.size(), h.slots_stride, h.logits_stride, 9);
    d.write(h);
    LSA_CUDA_OK(d.run(chunker));
    require_same(h, d, chunker);
  };
  check(good, lsa::Status::kOk);
  using lsa::Status;
  HostBatch bad = good;
  bad.num_tokens[0] = 0;  // pages outside an empty history
  check(bad, Status::kInvalidArgument);
  bad = good;
  bad.num_tokens[2] = 5 * 16;  // page 63 past the history
  check(bad, Status::kInvalidArgument);
  bad = good;
  bad.slots[static_cast<size_t>(4 * good.slots_stride + 3)] = -3;  // page 3 of row 4 has no slot
  check(bad, Status::kInvalidArgument);
  bad = good;
  bad.slots[static_cast<size_t>(4 * good.slots_stride + 5)] = INT32_MAX / 16 + 1;  // overflows
  check(bad, Status::kInvalidArgument);
  bad = good;
  bad.num_tokens[3] = -1;
  check(bad, Status::kInvalidArgument);
  bad = good;
  bad.num_tokens[5] = 64 * 16 + 1;  // more chunks than the rows of logits hold
  check(bad, Status::kInvalidArgument);
  bad = good;
  set_pages(bad, 2, {0, 5, 3, 63});  // not ascending
  check(bad, Status::kInvalidArgument);
  set_pages(bad, 2, {0, 3, 3, 63});  // twice
  check(bad, Status::kInvalidArgument);
  set_pages(bad, 2, {-1, 3});
  check(bad, Status::kInvalidArgument);
  bad = good;
  bad.offsets[3] = bad.offsets[2] - 1;  // row 2 ends before it begins
  check(bad, Status::kInvalidArgument);
  // Page 63 past a page table of 60 entries.
  bad = good;
  bad.slots_stride = 60;
  bad.slots.clear();
  for (size_t b = 0; b < 6; ++b) {
    const auto row = good.slots.begin() + static_cast<std::ptrdiff_t>(b * 64);
    bad.slots.insert(bad.slots.end(), row, row + 60);
  }
  check(bad, Status::kInvalidArgument);
}

TEST_CASE("level2_select replays from a CUDA graph as the table and the logits change",
          "[gpu][level2]") {
  LSA_REQUIRE_GPU();
  const lsa::Chunker chunker(1, 16);
  const int32_t batch = 8;
  const int64_t max_pages = 2048;
  const int32_t k = 512;
  std::mt19937 rng(77);
  std::vector<HostBatch> steps;
  for (const Logits mode :
       {Logits::kNormal, Logits::kFewValues, Logits::kSpecial, Logits::kNormal}) {
    steps.push_back(random_batch(rng, chunker, batch, max_pages, 0.1, 1.0, mode));
  }
  steps[2].num_tokens[3] = 0;  // an unreadable row in one replay
  set_pages(steps[2], 3, {0});
  DeviceBatch d(batch, static_cast<size_t>(batch * max_pages) + 1, steps[0].slots_stride,
                steps[0].logits_stride, k);
  cudaStream_t stream = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamCreate(&stream));
  d.write(steps[0]);
  LSA_CUDA_OK(d.run(chunker, stream));  // uncaptured first launch (loads the kernel)
  LSA_CUDA_REQUIRE(cudaStreamSynchronize(stream));
  require_same(steps[0], d, chunker);

  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const lsa::cuda::CudaError captured = d.run(chunker, stream);
  LSA_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
  LSA_CUDA_OK(captured);
  LSA_CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));
  for (const HostBatch& step : steps) {
    d.write(step);
    LSA_CUDA_REQUIRE(cudaGraphLaunch(exec, stream));
    LSA_CUDA_REQUIRE(cudaStreamSynchronize(stream));
    require_same(step, d, chunker);
  }
  LSA_CUDA_REQUIRE(cudaGraphExecDestroy(exec));
  LSA_CUDA_REQUIRE(cudaGraphDestroy(graph));
  LSA_CUDA_REQUIRE(cudaStreamDestroy(stream));
}

TEST_CASE("level2_select checks its arguments", "[gpu][level2]") {
  LSA_REQUIRE_GPU();
  using lsa::cuda::CudaError;
  const lsa::Chunker chunker(1, 16);
  std::mt19937 rng(3);
  const HostBatch h = random_batch(rng, chunker, 2, 8, 1.0, 1.0, Logits::kNormal);
  DeviceBatch d(2, h.pages.size(), h.slots_stride, h.logits_stride, 4);
  d.write(h);
  const auto call = [&](lsa::cuda::DeviceBatchTable table, const float* logits, int64_t stride,
                        lsa::Chunker c, int32_t k, int32_t* out) {
    return lsa::cuda::level2_select(table, logits, stride, c, k, out, nullptr, nullptr);
  };
  CHECK(call(d.table, d.logits.get(), h.logits_stride, chunker, 0, d.out.get()) ==
        CudaError::kInvalidValue);
  CHECK(call(d.table, d.logits.get(), h.logits_stride, chunker, lsa::cuda::kLevel2MaxK + 1,
             d.out.get()) == CudaError::kNotSupported);
  CHECK(call(d.table, d.logits.get(), -1, chunker, 4, d.out.get()) == CudaError::kInvalidValue);
  CHECK(call(d.table, d.logits.get(), h.logits_stride, lsa::Chunker(1, 0), 4, d.out.get()) ==
        CudaError::kInvalidValue);
  CHECK(call(d.table, nullptr, h.logits_stride, chunker, 4, d.out.get()) ==
        CudaError::kInvalidValue);
  CHECK(call(d.table, d.logits.get(), h.logits_stride, chunker, 4, nullptr) ==
        CudaError::kInvalidValue);
  lsa::cuda::DeviceBatchTable no_pages = d.table;
  no_pages.d_resident_pages = nullptr;
  CHECK(call(no_pages, d.logits.get(), h.logits_stride, chunker, 4, d.out.get()) ==
        CudaError::kInvalidValue);
  // An empty batch needs no pointers and reports kOk; without d_status, rows are still written.
  lsa::cuda::DeviceBatchTable empty;
  DeviceArray<int32_t> status(1);
  status.fill_bytes(0x5A);
  LSA_CUDA_OK(
      lsa::cuda::level2_select(empty, nullptr, 0, chunker, 4, nullptr, status.get(), nullptr));
  CHECK(status.download()[0] == static_cast<int32_t>(lsa::Status::kOk));
  LSA_CUDA_OK(call(d.table, d.logits.get(), h.logits_stride, chunker, 4, d.out.get()));
  lsa::Status host_status;
  CHECK(d.out.download() == host_rows(h, chunker, 4, host_status));
  CHECK(host_status == lsa::Status::kOk);
}
