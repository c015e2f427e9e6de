// The slow tier: every sealed page byte-exact, in memory arenas or in a file (pwrite/pread).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "lsa/status.hpp"

namespace lsa::detail {

/// How an in-memory mirror gets its arenas (plain aligned memory, or pinned memory for a device
/// store); `allocate` returns nullptr when it fails.
struct ArenaAllocator {
  void* (*allocate)(size_t bytes) noexcept = &allocate_aligned;  ///< a new arena
  void (*deallocate)(void* arena) noexcept = &deallocate_aligned;  ///< gives one back

  /// 64-byte aligned host memory.
  static void* allocate_aligned(size_t bytes) noexcept {
    return ::operator new[](bytes, std::align_val_t{64}, std::nothrow);
  }
  /// Frees allocate_aligned memory.
  static void deallocate_aligned(void* arena) noexcept {
    ::operator delete[](arena, std::align_val_t{64});
  }
};

/// Page-sized cells of the slow tier, addressed by a mirror index; freed cells are reused.
class Mirror {
 public:
  /// In-memory mirror (arenas from `arenas`) when `path` is empty, else a file created (truncated)
  /// at `path`; the caller checks open_errno().
  Mirror(int64_t page_bytes, const std::string& path, ArenaAllocator arenas = {})
      : page_bytes_(page_bytes), arenas_(arenas) {
    pages_per_block_ = std::max<int64_t>(1, kBlockBytes / page_bytes_);
    if (!path.empty()) {
      fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd_ < 0) open_errno_ = errno;
    }
  }
  ~Mirror() {
    if (fd_ >= 0) ::close(fd_);
    for (std::byte* block : blocks_) arenas_.deallocate(block);
  }
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  /// errno of a failed file open, 0 when the mirror is usable.
  int open_errno() const noexcept { return open_errno_; }
  /// True when pages live in a file.
  bool file_backed() const noexcept { return fd_ >= 0; }
  /// Cells in use.
  int64_t used() const noexcept { return next_ - static_cast<int64_t>(free_.size()); }

  /// Reserves capacity so that `cells` cells can be allocated without growing bookkeeping.
  Status reserve(int64_t cells) noexcept {
    try {
      free_.reserve(static_cast<size_t>(cells));
      blocks_.reserve(static_cast<size_t>(cells / pages_per_block_ + 1));
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    return Status::kOk;
  }

  /// A free cell (grows the arena or the file as needed); -1 on allocation failure.
  int64_t allocate() noexcept {
    if (!free_.empty()) {
      const int64_t cell = free_.back();
      free_.pop_back();
      return cell;
    }
    if (fd_ < 0 && next_ == static_cast<int64_t>(blocks_.size()) * pages_per_block_) {
      void* block = arenas_.allocate(static_cast<size_t>(pages_per_block_ * page_bytes_));
      if (block == nullptr) return -1;
      try {
        blocks_.push_back(static_cast<std::byte*>(block));
      } catch (const std::bad_alloc&) {
        arenas_.deallocate(block);
        return -1;
      }
    }
    return next_++;
  }

  /// Returns a cell for reuse.
  void release(int64_t cell) noexcept { free_.push_back(cell); }

  /// Writes one page into `cell`.
  Status write(int64_t cell, const std::byte* src) noexcept {
    if (fd_ < 0) {
      std::memcpy(const_cast<std::byte*>(memory(cell)), src, static_cast<size_t>(page_bytes_));
      return Status::kOk;
    }
    return io(cell * page_bytes_, const_cast<std::byte*>(src), page_bytes_, /*writing=*/true);
  }

  /// Reads one page from `cell`; safe from a worker thread concurrently with writes of other cells.
  Status read(int64_t cell, std::byte* dst) const noexcept { return read(cell, 0, dst, page_bytes_); }

  /// Reads `bytes` bytes at `offset` of the page in `cell`.
  Status read(int64_t cell, int64_t offset, std::byte* dst, int64_t bytes) const noexcept {
    if (fd_ < 0) {
      std::memcpy(dst, memory(cell) + offset, static_cast<size_t>(bytes));
      return Status::kOk;
    }
    return io(cell * page_bytes_ + offset, dst, bytes, /*writing=*/false);
  }

  /// Address of an in-memory cell (nullptr for a file-backed mirror).
  const std::byte* memory(int64_t cell) const noexcept {
    if (fd_ >= 0) return nullptr;
    return blocks_[cell / pages_per_block_] + (cell % pages_per_block_) * page_bytes_;
  }

 private:
  static constexpr int64_t kBlockBytes = int64_t{64} << 20;

  Status io(int64_t at_byte, std::byte* buf, int64_t bytes, bool writing) const noexcept {
    int64_t done = 0;
    while (done < bytes) {
      const off_t at = static_cast<off_t>(at_byte + done);
      const size_t n = static_cast<size_t>(bytes - done);
      const ssize_t r =
          writing ? ::pwrite(fd_, buf + done, n, at) : ::pread(fd_, buf + done, n, at);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return Status::kIoError;
      done += r;
    }
    return Status::kOk;
  }

  int64_t page_bytes_;
  ArenaAllocator arenas_;
  int64_t pages_per_block_ = 1;
  int fd_ = -1;
  int open_errno_ = 0;
  int64_t next_ = 0;
  std::vector<int64_t> free_;
  std::vector<std::byte*> blocks_;  // arenas of pages_per_block_ cells, from arenas_
};

}  // namespace lsa::detail
