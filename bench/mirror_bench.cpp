// What a page digest costs: sealing a page into the mirror (copy + XXH3 of the page) and reading
// it back (copy + XXH3 check), with and without digests, for an in-memory and a file mirror.
//
// Arg 0: page bytes (4 KiB = the refresh benchmark's pages; 64 KiB; 1 MiB ~ 64 tokens of a large
// model's KV). Arg 1: digests off (0) or on (1). The pages cycle over 256 MiB of mirror cells, so
// the mirror side is not in the caches (as in a long context); the slot side is one page, hot.
// The file mirror lives in the system temp directory (the page cache: no disk in the numbers).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "lsa/detail/mirror.hpp"
#include "lsa/detail/page_digest.hpp"

namespace {

constexpr int64_t kMirrorBytes = int64_t{256} << 20;

std::string temp_file() {
  return (std::filesystem::temp_directory_path() /
          ("lsa_mirror_bench_" + std::to_string(::getpid()) + ".bin"))
      .string();
}

struct Fixture {
  Fixture(int64_t page_bytes, bool digests, bool file)
      : path(file ? temp_file() : ""),
        mirror(page_bytes,
               lsa::detail::MirrorOptions{.path = path, .overwrite = true, .digests = digests}),
        page(static_cast<size_t>(page_bytes)),
        cells(kMirrorBytes / page_bytes) {
    for (size_t i = 0; i < page.size(); ++i) page[i] = static_cast<std::byte>(i * 131 + 7);
    (void)mirror.reserve(cells);
    for (int64_t c = 0; c < cells; ++c) {
      if (mirror.allocate() != c || mirror.write(c, page.data()) != lsa::Status::kOk) ok = false;
    }
  }
  ~Fixture() {
    if (!path.empty()) std::filesystem::remove(path);
  }
  std::string path;
  lsa::detail::Mirror mirror;
  std::vector<std::byte> page;
  int64_t cells;
  bool ok = true;
};

void run_seal(benchmark::State& state, bool file) {
  const int64_t page_bytes = state.range(0);
  Fixture f(page_bytes, state.range(1) != 0, file);
  if (!f.ok) return state.SkipWithError("mirror setup failed");
  int64_t cell = 0;
  for (auto _ : state) {
    if (f.mirror.write(cell, f.page.data()) != lsa::Status::kOk)
      return state.SkipWithError("write");
    cell = (cell + 1) % f.cells;
  }
  state.SetBytesProcessed(state.iterations() * page_bytes);
}

void run_recall(benchmark::State& state, bool file) {
  const int64_t page_bytes = state.range(0);
  Fixture f(page_bytes, state.range(1) != 0, file);
  if (!f.ok) return state.SkipWithError("mirror setup failed");
  std::vector<std::byte> slot(static_cast<size_t>(page_bytes));
  int64_t cell = 0;
  for (auto _ : state) {
    // What a sync recall does (HostStore::recall_sync); the async worker copies then checks the
    // same way.
    if (f.mirror.read(cell, slot.data()) != lsa::Status::kOk) return state.SkipWithError("read");
    benchmark::DoNotOptimize(slot.data());
    cell = (cell + 1) % f.cells;
  }
  state.SetBytesProcessed(state.iterations() * page_bytes);
}

void BM_MirrorSeal(benchmark::State& state) { run_seal(state, false); }
void BM_MirrorRecall(benchmark::State& state) { run_recall(state, false); }
void BM_MirrorSealFile(benchmark::State& state) { run_seal(state, true); }
void BM_MirrorRecallFile(benchmark::State& state) { run_recall(state, true); }

// The digest alone, on a hot page.
void BM_PageDigest(benchmark::State& state) {
  std::vector<std::byte> page(static_cast<size_t>(state.range(0)), std::byte{3});
  for (auto _ : state)
    benchmark::DoNotOptimize(lsa::detail::page_digest(page.data(), state.range(0)));
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

#define LSA_MIRROR_ARGS                \
  ->ArgNames({"page_bytes", "digest"}) \
      ->Args({4096, 0})                \
      ->Args({4096, 1})                \
      ->Args({65536, 0})               \
      ->Args({65536, 1})               \
      ->Args({1 << 20, 0})             \
      ->Args({1 << 20, 1})             \
      ->Unit(benchmark::kMicrosecond)

BENCHMARK(BM_MirrorSeal) LSA_MIRROR_ARGS;
BENCHMARK(BM_MirrorRecall) LSA_MIRROR_ARGS;
BENCHMARK(BM_MirrorSealFile) LSA_MIRROR_ARGS;
BENCHMARK(BM_MirrorRecallFile) LSA_MIRROR_ARGS;
BENCHMARK(BM_PageDigest)->Arg(4096)->Arg(65536)->Arg(1 << 20)->Unit(benchmark::kMicrosecond);

}  // namespace
