// CudaStore: the randomized API test of the core on the device store (both recall modes, both copy
// paths, the legacy and a private compute stream), parity of views with the host store, nothing
// lost under constant eviction with copies in flight, and construction errors.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "lsa/cuda/cuda_store.hpp"
#include "support/cuda_store_access.hpp"  // before the harness: read_slot / write_slot overloads
#include "support/gpu.hpp"
#include "support/random_api.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::cuda::CudaStore;
using lsa::cuda::CudaStoreOptions;
using lsa::cuda::RecallCopy;
using lsa::testing::random_api::run;

// A stream owned by a test.
class OwnedStream {
 public:
  OwnedStream() { LSA_CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~OwnedStream() { (void)cudaStreamDestroy(stream_); }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// The harness's small cache (4 sequences, 4-token pages, refresh every step) with a reserve two
// slots above its minimum, so nearly every refresh evicts.
lsa::CacheConfig small_config(RecallMode mode) {
  lsa::CacheConfig c = lsa::testing::small_config();
  c.bytes_per_token_per_layer = 12;
  c.max_tokens = 4096;
  c.recall_mode = mode;
  c.policy.kmax_pages = 5;
  c.num_slots = c.max_sequences * c.policy.kmax_pages + 2;
  return c;
}

}  // namespace

TEST_CASE("cuda store: random API operations, sync recall, batched memcpy",
          "[gpu][cuda_store][random]") {
  LSA_REQUIRE_GPU();
  run<CudaStore>(RecallMode::kSync, 8, 1500, /*file_mirrors=*/false);
}

TEST_CASE("cuda store: random API operations, async recall, batched memcpy",
          "[gpu][cuda_store][random]") {
  LSA_REQUIRE_GPU();
  run<CudaStore>(RecallMode::kAsync, 6, 1500, /*file_mirrors=*/false);
}

TEST_CASE("cuda store: random API operations, async recall, gather kernel, private compute stream",
          "[gpu][cuda_store][random]") {
  LSA_REQUIRE_GPU();
  OwnedStream stream;
  const CudaStoreOptions options{0, stream.get(), RecallCopy::kGatherKernel};
  run<CudaStore>(RecallMode::kAsync, 6, 1500, /*file_mirrors=*/false, options);
  run<CudaStore>(RecallMode::kSync, 4, 1500, /*file_mirrors=*/false, options);
}

TEST_CASE(
    "cuda store: the same calls give byte-identical views and stats on host and device stores",
    "[gpu][cuda_store][parity]") {
  LSA_REQUIRE_GPU();
  for (const RecallCopy copy : {RecallCopy::kMemcpyBatch, RecallCopy::kGatherKernel}) {
    const lsa::CacheConfig config = small_config(RecallMode::kSync);
    lsa::testing::Harness host(config, 7);
    lsa::testing::BasicHarness<CudaStore> device(config, 7, CudaStoreOptions{0, nullptr, copy});
    std::mt19937_64 rng(2026);
    const std::vector<SeqId> ids = {3, 11, 40, 41};
    for (const SeqId id : ids) {
      REQUIRE(host.add(id) == Status::kOk);
      REQUIRE(device.add(id) == Status::kOk);
    }
    for (int step = 0; step < 400; ++step) {
      for (const SeqId id : ids) {
        const auto n =
            static_cast<int32_t>(std::uniform_int_distribution<int>(0, step < 5 ? 40 : 2)(rng));
        // Both harnesses draw KV bytes and keys from equal generators: the same data goes in.
        REQUIRE(host.append(id, n) == Status::kOk);
        REQUIRE(device.append(id, n) == Status::kOk);
      }
      std::vector<float> q(ids.size());
      for (float& v : q) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
      REQUIRE(host.step(ids, q) == Status::kOk);
      REQUIRE(device.step(ids, q) ==
              Status::kOk);  // checks every listed slot's bytes on the device
      INFO("step " << step);
      REQUIRE(host.views.indptr == device.views.indptr);
      REQUIRE(host.views.indices == device.views.indices);
      REQUIRE(host.views.last_page_len == device.views.last_page_len);
      REQUIRE(host.views.slot_lists == device.views.slot_lists);
      REQUIRE(host.views.block_table == device.views.block_table);
      const lsa::Stats a = host.cache.stats(), b = device.cache.stats();
      REQUIRE(a.resident_pages == b.resident_pages);
      REQUIRE(a.recalled_pages == b.recalled_pages);
      REQUIRE(a.evictions == b.evictions);
      REQUIRE(a.sealed_pages == b.sealed_pages);
    }
    REQUIRE(device.cache.stats().evictions > 100);
    device.check_all();  // every token's bytes, read back through read_token
    REQUIRE(lsa::cuda::ok(device.cache.store().cuda_error()));
  }
}

TEST_CASE("cuda store: nothing is lost under constant eviction with async copies in flight",
          "[gpu][cuda_store]") {
  LSA_REQUIRE_GPU();
  const lsa::CacheConfig config = small_config(RecallMode::kAsync);
  lsa::testing::BasicHarness<CudaStore> h(config, 99);
  const std::vector<SeqId> ids = {1, 2, 3, 4};
  for (const SeqId id : ids) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append_in_pieces(id, 120, 8) == Status::kOk);
  }
  // Alternating query signs flip every selection, so each refresh recalls pages another sequence's
  // recall may have just evicted; steps never wait for the copies.
  for (int step = 0; step < 600; ++step) {
    std::vector<float> q(ids.size(), step % 2 == 0 ? 1.0f : -1.0f);
    REQUIRE(h.step(ids, q) == Status::kOk);
    if (step % 7 == 0) REQUIRE(h.append(ids[step % ids.size()], 1) == Status::kOk);
    h.check_state();
  }
  h.check_all();
  REQUIRE(h.cache.stats().evictions > 200);
  REQUIRE(lsa::cuda::ok(h.cache.store().cuda_error()));
}

TEST_CASE("cuda store: construction errors name the field", "[gpu][cuda_store][errors]") {
  LSA_REQUIRE_GPU();
  lsa::CacheConfig config = small_config(RecallMode::kSync);
  config.mirror_path = "/tmp/lsa_mirror.bin";
  REQUIRE_THROWS_WITH(CudaStore(config), Catch::Contains("mirror_path"));
  config.mirror_path.clear();
  REQUIRE_THROWS_WITH(CudaStore(config, CudaStoreOptions{1 << 20}), Catch::Contains("device"));
  const CudaStore store(config);
  REQUIRE(store.num_slots() == config.num_slots);
  REQUIRE(store.page_bytes() == config.page_bytes());
}
