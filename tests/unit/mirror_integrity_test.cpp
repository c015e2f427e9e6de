// Invariant 9: no silent wrong byte from the mirror. A mirror file belongs to one cache (an
// exclusive lock; an existing non-empty file is refused unless the config asks to overwrite it),
// and every page read back from the mirror is checked against the digest taken when it was sealed.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "lsa/error.hpp"
#include "support/cache_harness.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::testing::Harness;
using lsa::testing::small_config;
using lsa::testing::TempDir;

lsa::CacheConfig file_config(const std::string& path, RecallMode mode = RecallMode::kSync) {
  lsa::CacheConfig c = small_config();  // 4-token pages, 2 layers of 8 B per token, interval 1
  c.max_sequences = 1;
  c.max_tokens = 4096;
  c.policy.kmax_pages = 8;
  c.num_slots = 10;
  c.recall_mode = mode;
  c.mirror_path = path;
  return c;
}

int64_t file_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return in ? static_cast<int64_t>(in.tellg()) : -1;
}

// Tokens of `id` whose page has no slot: read_token reads them from the mirror.
std::vector<int64_t> mirror_only_tokens(const Harness& h, SeqId id) {
  std::vector<int64_t> tokens;
  const int64_t pt = h.config.page_tokens();
  for (int64_t t = 0; t < h.cache.length(id); ++t) {
    if (h.cache.slot_of(id, t / pt) < 0) tokens.push_back(t);
  }
  return tokens;
}

}  // namespace

TEST_CASE("mirror: a second cache on the same mirror_path is refused while the first lives",
          "[cpu][mirror][io]") {
  TempDir dir;
  const std::string path = dir.file("mirror.bin");
  Harness a(file_config(path), 1);
  REQUIRE(a.add(1) == Status::kOk);
  REQUIRE(a.append_in_pieces(1, 200, 8) == Status::kOk);  // 50 pages sealed into the file
  REQUIRE(file_size(path) > 0);
  try {
    lsa::testing::TestCache b(file_config(path));
    FAIL("a second cache opened a mirror file in use");
  } catch (const lsa::Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("mirror_path") != std::string::npos);
    CHECK(std::string(e.what()).find(path) != std::string::npos);
  }
  a.check_all();  // the first cache's pages are intact
}

TEST_CASE("mirror: the file is emptied and unlocked when its cache goes away",
          "[cpu][mirror][io]") {
  TempDir dir;
  const std::string path = dir.file("mirror.bin");
  {
    Harness a(file_config(path), 1);
    REQUIRE(a.add(1) == Status::kOk);
    REQUIRE(a.append(1, 100) == Status::kOk);
    REQUIRE(file_size(path) > 0);
  }
  CHECK(file_size(path) == 0);
  Harness b(file_config(path), 2);  // the next cache takes the path over
  REQUIRE(b.add(1) == Status::kOk);
  REQUIRE(b.append(1, 100) == Status::kOk);
  b.check_all();
}

TEST_CASE("mirror: an existing non-empty file is refused unless the config asks to overwrite it",
          "[cpu][mirror][io]") {
  TempDir dir;
  const std::string path = dir.file("mirror.bin");
  {
    std::ofstream out(path, std::ios::binary);
    out << "somebody's data";
  }
  try {
    lsa::testing::TestCache cache(file_config(path));
    FAIL("opened an existing non-empty mirror file");
  } catch (const lsa::Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("mirror_path") != std::string::npos);
  }
  CHECK(file_size(path) == 15);  // untouched
  lsa::CacheConfig c = file_config(path);
  c.mirror_overwrite = true;
  Harness h(c, 1);
  CHECK(file_size(path) == 0);  // discarded as asked
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 100) == Status::kOk);
  h.check_all();
}

TEST_CASE("mirror: a mirror file truncated and regrown behind the cache never reads back as ok",
          "[cpu][mirror][io]") {
  // The lost pages become holes (zeros) once new pages are sealed past the old end: reading one
  // gives kCorrupt (kIoError past the end), a refresh leaves them out and counts them.
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO((mode == RecallMode::kSync ? "sync" : "async"));
  TempDir dir;
  const std::string path = dir.file("mirror.bin");
  Harness h(file_config(path, mode), 3);
  h.key_fn = [](SeqId, int64_t chunk) { return chunk < 40 ? 1.0f : -1.0f; };  // q 1: pages 0-19
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append_in_pieces(1, 160, 8) == Status::kOk);  // 40 pages, most evicted
  const std::vector<int64_t> lost = mirror_only_tokens(h, 1);
  REQUIRE(lost.size() > 100);
  REQUIRE(::truncate(path.c_str(), 0) == 0);
  REQUIRE(h.append_in_pieces(1, 160, 8) == Status::kOk);  // 40 more pages sealed past the old end
  REQUIRE(file_size(path) > 40 * h.config.page_bytes());
  std::vector<std::byte> buf(static_cast<size_t>(h.config.bytes_per_token_per_layer));
  int64_t ok = 0, corrupt = 0;
  for (int64_t t : lost) {
    if (h.cache.slot_of(1, t / h.config.page_tokens()) >= 0) continue;
    const Status s = h.cache.read_token(1, t, 0, buf.data());
    ok += s == Status::kOk;
    corrupt += s == Status::kCorrupt;
    CHECK((s == Status::kCorrupt || s == Status::kIoError));
  }
  CHECK(ok == 0);
  CHECK(corrupt > 0);
  // Refreshes that want the lost pages leave them out (the view check compares every listed
  // slot with the model's bytes) and count them.
  CHECK(h.step_until({1}, 1.0f, [&] { return h.cache.stats().corrupt_recalls > 0; }));
  for (int i = 0; i < 20; ++i) REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  const lsa::Stats st = h.cache.stats();
  INFO(lsa::testing::to_text(st));
  CHECK(st.recall_errors > 0);
  CHECK(st.corrupt_recalls > 0);
  CHECK(st.corrupt_recalls <= st.recall_errors);
}

TEST_CASE("mirror: bytes changed in the file behind the cache read back as kCorrupt",
          "[cpu][mirror][io]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO((mode == RecallMode::kSync ? "sync" : "async"));
  TempDir dir;
  const std::string path = dir.file("mirror.bin");
  Harness h(file_config(path, mode), 4);
  h.key_fn = [](SeqId, int64_t chunk) { return chunk < 40 ? 1.0f : -1.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 160) == Status::kOk);  // 40 pages, most straight to the mirror
  const std::vector<int64_t> evicted = mirror_only_tokens(h, 1);
  REQUIRE(evicted.size() > 100);
  // One byte flipped in every page of the file (another process writing it).
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  const int64_t pb = h.config.page_bytes();
  for (int64_t at = 5; at < file_size(path); at += pb) {
    std::byte b{};
    REQUIRE(::pread(fd, &b, 1, at) == 1);
    b ^= std::byte{0x40};
    REQUIRE(::pwrite(fd, &b, 1, at) == 1);
  }
  ::close(fd);
  std::vector<std::byte> buf(static_cast<size_t>(h.config.bytes_per_token_per_layer));
  for (int64_t t : evicted) CHECK(h.cache.read_token(1, t, 1, buf.data()) == Status::kCorrupt);
  // Steps until a refresh has tried (views checked on every step).
  CHECK(h.step_until({1}, 1.0f, [&] { return h.cache.stats().corrupt_recalls > 0; }));
  // The resident pages are still right: their slots hold them.
  h.check_state();
}

TEST_CASE("mirror: injected I/O faults fail the call or leave the page out, never a wrong byte",
          "[cpu][mirror][io]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO((mode == RecallMode::kSync ? "sync" : "async"));
  TempDir dir;
  bool fail_reads = false, fail_writes = false;
  lsa::HostStoreOptions options{[&](lsa::MirrorIo op, int64_t) {
    return op == lsa::MirrorIo::kRead ? fail_reads : fail_writes;
  }};
  Harness h(file_config(dir.file("mirror.bin"), mode), 5, options);
  h.key_fn = [](SeqId, int64_t chunk) { return chunk < 40 ? 1.0f : -1.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 160) == Status::kOk);
  // Writes fail: a prefill that streams pages to the mirror is refused, unchanged.
  fail_writes = true;
  lsa::testing::Snapshot before = h.snapshot();
  CHECK(h.append(1, 160) == Status::kIoError);
  CHECK(before.diff(h.snapshot()) == "");
  // ...and a decode append keeps its full page unsealed in its slot; commit says so.
  REQUIRE(h.append(1, 4, Harness::Kv::kEngineWrites) == Status::kOk);
  CHECK(h.commit(1) == Status::kIoError);
  fail_writes = false;
  REQUIRE(h.commit(1) == Status::kOk);
  // Reads fail: read_token of an evicted page, and refreshes that want evicted pages.
  fail_reads = true;
  const std::vector<int64_t> evicted = mirror_only_tokens(h, 1);
  REQUIRE(!evicted.empty());
  std::vector<std::byte> buf(static_cast<size_t>(h.config.bytes_per_token_per_layer));
  CHECK(h.cache.read_token(1, evicted.front(), 0, buf.data()) == Status::kIoError);
  const int64_t errors = h.cache.stats().recall_errors;
  CHECK(h.step_until({1}, 1.0f, [&] { return h.cache.stats().recall_errors > errors; }));
  CHECK(h.cache.stats().corrupt_recalls == 0);
  fail_reads = false;
  for (int i = 0; i < 10; ++i) REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  h.settle(1);
  h.check_all();
}
