// A KVStore that keeps its copy jobs as cuda::CudaStore does (detail::CopyJobs), on a fake engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/detail/copy_jobs.hpp"
#include "lsa/detail/mirror.hpp"
#include "lsa/detail/slot_book.hpp"
#include "lsa/status.hpp"
#include "support/fake_copy_engine.hpp"

namespace lsa::testing {

/// CudaStore's job rules on the CPU: recalls go as one job per batch through a FakeCopyEngine and
/// land only when the test finishes that job; the engine's compute stream is the calling thread,
/// so where CudaStore makes the compute stream wait for a job, this store waits for it. Lets the
/// cache's handling of failed copies, submits and records run in every CI run.
class FakeDeviceStore : public detail::SlotBook {
 public:
  explicit FakeDeviceStore(const CacheConfig& config)
      : detail::SlotBook(config.num_slots),
        page_bytes_(config.page_bytes()),
        layer_bytes_(config.bytes_per_page_per_layer()),
        token_bytes_(config.bytes_per_token_per_layer),
        num_layers_(config.num_layers),
        async_(config.recall_mode == RecallMode::kAsync),
        mirror_(page_bytes_, detail::MirrorOptions{}),
        reserve_(static_cast<size_t>(page_bytes_ * config.num_slots)),
        engine_(page_bytes_),
        jobs_(engine_, config.num_slots) {}

  /// The fake engine: fail the next issue or record, finish jobs.
  FakeCopyEngine& engine() noexcept { return engine_; }
  /// The bookkeeping under test.
  const detail::CopyJobs<FakeCopyEngine>& jobs() const noexcept { return jobs_; }
  /// As CudaStore::status.
  Status status() const noexcept { return jobs_.status(); }

  int64_t page_bytes() const noexcept { return page_bytes_; }
  std::byte* slot_data(int32_t slot) noexcept {
    return reserve_.data() + int64_t{slot} * page_bytes_;
  }
  const std::byte* slot_data(int32_t slot) const noexcept {
    return reserve_.data() + int64_t{slot} * page_bytes_;
  }
  bool async() const noexcept { return async_; }
  int64_t mirror_pages() const noexcept { return mirror_.used(); }

  Status reserve_pages(int64_t pages) noexcept {
    if (Status s = reserve_records(pages); s != Status::kOk) return s;
    return mirror_.reserve(record_capacity());
  }
  void release(PageId id) noexcept {
    if (const int64_t cell = release_record(id); cell >= 0) mirror_.release(cell);
  }
  int32_t take_slot(PageId id) noexcept {
    const int32_t slot = take_slot_for(id).slot;
    if (jobs_.slot_job(slot) > jobs_.submitted()) submit_recalls();
    compute_waits_for(jobs_.slot_job(slot));
    jobs_.clear_slot(slot);
    return slot;
  }
  Status seal(PageId id) noexcept {
    if (sealed(id)) return Status::kOk;
    const int64_t cell = mirror_.allocate();
    if (cell < 0) return Status::kOutOfMemory;
    submit_recalls();
    const int32_t slot = slot_of(id);
    // The write-back runs at once (a CUDA store queues it; only its job's record may fail here).
    std::memcpy(const_cast<std::byte*>(mirror_.memory(cell)), slot_data(slot),
                static_cast<size_t>(page_bytes_));
    const uint64_t job = jobs_.close_own(0);
    if (job == 0) {
      mirror_.release(cell);
      return Status::kDeviceError;
    }
    jobs_.touch_slot(slot, job);
    mark_sealed(id, cell);
    return Status::kOk;
  }
  void unseal(PageId id) noexcept {
    compute_waits_for(jobs_.slot_job(slot_of(id)));
    if (const int64_t cell = mark_unsealed(id); cell >= 0) mirror_.release(cell);
  }
  Status recall_sync(PageId id) noexcept {
    recall_async(id, nullptr);
    return jobs_.status();
  }
  void recall_async(PageId id, detail::RecallTicket* ticket) noexcept {
    const int32_t slot = take_slot(id);
    jobs_.add({mirror_.memory(cell_of(id)), slot_data(slot), slot, ticket});
    count_recall();
  }
  void submit_recalls() noexcept {
    if (jobs_.batch().empty()) return;
    bool compute_waits = !async_;
    for (const detail::BatchCopy& c : jobs_.batch()) compute_waits |= c.ticket == nullptr;
    const uint64_t job = jobs_.submit();
    if (job != 0 && compute_waits) jobs_.wait(job);
  }
  uint64_t slot_job(int32_t slot) const noexcept { return jobs_.slot_job(slot); }
  bool copies_done(uint64_t job) const noexcept { return jobs_.done(job); }
  bool slot_ready(int32_t slot) const noexcept { return copies_done(jobs_.slot_job(slot)); }
  bool slot_failed(int32_t slot) const noexcept { return jobs_.slot_failed(slot); }
  void wait_copies(uint64_t job) noexcept {
    if (job > jobs_.submitted()) submit_recalls();
    jobs_.wait(job);
  }

  void write_tokens(int32_t slot, int32_t first, int32_t num_tokens,
                    const std::byte* src) noexcept {
    for (int32_t i = 0; i < num_tokens; ++i) {
      for (int32_t layer = 0; layer < num_layers_; ++layer) {
        std::memcpy(slot_data(slot) + layer * layer_bytes_ + int64_t{first + i} * token_bytes_,
                    src + (int64_t{i} * num_layers_ + layer) * token_bytes_,
                    static_cast<size_t>(token_bytes_));
      }
    }
  }
  void write_page(int32_t slot, const std::byte* src) noexcept {
    std::memcpy(slot_data(slot), src, static_cast<size_t>(page_bytes_));
  }
  void copy_slot(int32_t to, int32_t from) noexcept {
    std::memcpy(slot_data(to), slot_data(from), static_cast<size_t>(page_bytes_));
  }
  Status read_page(PageId id, std::byte* dst) const noexcept {
    return read_bytes(id, 0, dst, page_bytes_);
  }
  Status read_bytes(PageId id, int64_t offset, std::byte* dst, int64_t bytes) const noexcept {
    const int32_t slot = slot_of(id);
    if (slot >= 0 && (!sealed(id) || (slot_ready(slot) && !slot_failed(slot)))) {
      std::memcpy(dst, slot_data(slot) + offset, static_cast<size_t>(bytes));
      return Status::kOk;
    }
    return mirror_.read(cell_of(id), offset, dst, bytes);
  }

 private:
  // Where CudaStore makes the compute stream wait for a job on the device.
  void compute_waits_for(uint64_t job) noexcept {
    if (!jobs_.done(job)) jobs_.wait(job);
  }

  int64_t page_bytes_;
  int64_t layer_bytes_;
  int64_t token_bytes_;
  int32_t num_layers_;
  bool async_;
  detail::Mirror mirror_;
  std::vector<std::byte> reserve_;
  FakeCopyEngine engine_;
  detail::CopyJobs<FakeCopyEngine> jobs_;
};

/// Reads `bytes` bytes at `offset` of a fake device store's slot.
inline void read_slot(const FakeDeviceStore& store, int32_t slot, int64_t offset, std::byte* dst,
                      int64_t bytes) {
  std::memcpy(dst, store.slot_data(slot) + offset, static_cast<size_t>(bytes));
}
/// Writes `bytes` bytes at `offset` of a fake device store's slot, as an engine's KV write does.
inline void write_slot(FakeDeviceStore& store, int32_t slot, int64_t offset, const std::byte* src,
                       int64_t bytes) {
  std::memcpy(store.slot_data(slot) + offset, src, static_cast<size_t>(bytes));
}

}  // namespace lsa::testing
