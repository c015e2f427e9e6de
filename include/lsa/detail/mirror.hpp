// The slow tier: every sealed page byte-exact, in memory arenas or in a file (pwrite/pread), each
// page with the digest taken when it was sealed.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "lsa/detail/page_digest.hpp"
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

/// How a Mirror is set up besides its page size.
struct MirrorOptions {
  std::string path;            ///< empty: in memory; else this file (locked for this mirror alone)
  bool overwrite = false;      ///< an existing non-empty file: false refuses it, true empties it
  bool digests = false;        ///< keep a digest per page (write) and check it (read)
  ArenaAllocator arenas = {};  ///< where an in-memory mirror's arenas come from
};

/// Page-sized cells of the slow tier, addressed by a mirror index; freed cells are reused.
///
/// A file mirror is one cache's alone: the file is locked (flock, exclusive) while the mirror
/// lives, so a second cache on the same path (this process or another) is refused instead of
/// overwriting the first one's pages. Its contents mean nothing without the cache's bookkeeping,
/// so an existing non-empty file is refused unless `overwrite` says to empty it, and the file is
/// emptied when the mirror goes away.
///
/// With digests, every page written gets an XXH3 digest and every read of it is checked against
/// that digest: bytes that changed behind the cache (a truncated or regrown file, a tampered or
/// shared one) read as Status::kCorrupt, never as the page.
class Mirror {
 public:
  /// The caller checks open_error().
  Mirror(int64_t page_bytes, const MirrorOptions& options)
      : page_bytes_(page_bytes), arenas_(options.arenas), digests_on_(options.digests) {
    pages_per_block_ = std::max<int64_t>(1, kBlockBytes / page_bytes_);
    if (!options.path.empty()) open_file(options.path, options.overwrite);
  }
  ~Mirror() {
    if (fd_ >= 0) {
      // Still under our lock; the next cache on this path then finds an empty file.
      if (regular_file_ && ::ftruncate(fd_, 0) != 0) {
        // Nothing to do: the file stays as it is, and a later cache refuses it unless told.
      }
      ::close(fd_);
    }
    for (std::byte* block : blocks_) arenas_.deallocate(block);
  }
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  /// Why the file mirror cannot be used ("" when it can): completes "mirror_path '<path>' ...".
  const std::string& open_error() const noexcept { return open_error_; }
  /// True when pages live in a file.
  bool file_backed() const noexcept { return fd_ >= 0; }
  /// True when pages carry digests that reads check.
  bool digests() const noexcept { return digests_on_; }
  /// Cells in use.
  int64_t used() const noexcept { return next_ - static_cast<int64_t>(free_.size()); }

  /// Reserves capacity so that `cells` cells can be allocated without growing bookkeeping.
  Status reserve(int64_t cells) noexcept {
    try {
      free_.reserve(static_cast<size_t>(cells));
      blocks_.reserve(static_cast<size_t>(cells / pages_per_block_ + 1));
      if (digests_on_) digests_.reserve(static_cast<size_t>(cells));
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
    if (digests_on_) {
      try {
        digests_.push_back(0);
      } catch (const std::bad_alloc&) {
        return -1;
      }
    }
    return next_++;
  }

  /// Returns a cell for reuse.
  void release(int64_t cell) noexcept { free_.push_back(cell); }

  /// Writes one page into `cell` and records its digest.
  Status write(int64_t cell, const std::byte* src) noexcept {
    if (fd_ < 0) {
      std::memcpy(const_cast<std::byte*>(memory(cell)), src, static_cast<size_t>(page_bytes_));
    } else if (Status s = io(cell * page_bytes_, const_cast<std::byte*>(src), page_bytes_, true);
               s != Status::kOk) {
      return s;
    }
    if (digests_on_) digests_[static_cast<size_t>(cell)] = page_digest(src, page_bytes_);
    return Status::kOk;
  }

  /// Digest of the page in `cell` (0 without digests).
  uint64_t digest(int64_t cell) const noexcept {
    return digests_on_ ? digests_[static_cast<size_t>(cell)] : 0;
  }

  /// Reads one page from `cell` and checks its digest (kCorrupt when it differs). Engine thread.
  Status read(int64_t cell, std::byte* dst) const noexcept {
    if (Status s = read_unchecked(cell, dst); s != Status::kOk) return s;
    return check(cell, dst);
  }

  /// Reads `bytes` bytes at `offset` of the page in `cell`; with digests the whole page is read
  /// and checked first. Engine thread.
  Status read(int64_t cell, int64_t offset, std::byte* dst, int64_t bytes) const noexcept {
    if (!digests_on_) {
      if (fd_ < 0) {
        std::memcpy(dst, memory(cell) + offset, static_cast<size_t>(bytes));
        return Status::kOk;
      }
      return io(cell * page_bytes_ + offset, dst, bytes, false);
    }
    const std::byte* page = memory(cell);
    if (fd_ >= 0) {
      if (scratch_ == nullptr) {
        scratch_.reset(new (std::nothrow) std::byte[static_cast<size_t>(page_bytes_)]);
        if (scratch_ == nullptr) return Status::kOutOfMemory;
      }
      if (Status s = io(cell * page_bytes_, scratch_.get(), page_bytes_, false); s != Status::kOk) {
        return s;
      }
      page = scratch_.get();
    }
    if (Status s = check(cell, page); s != Status::kOk) return s;
    std::memcpy(dst, page + offset, static_cast<size_t>(bytes));
    return Status::kOk;
  }

  /// Reads one page from `cell` without checking it; safe from a worker thread concurrently with
  /// writes of other cells (the worker checks the bytes against the digest it was handed).
  Status read_unchecked(int64_t cell, std::byte* dst) const noexcept {
    if (fd_ < 0) {
      std::memcpy(dst, memory(cell), static_cast<size_t>(page_bytes_));
      return Status::kOk;
    }
    return io(cell * page_bytes_, dst, page_bytes_, false);
  }

  /// Address of an in-memory cell (nullptr for a file-backed mirror).
  const std::byte* memory(int64_t cell) const noexcept {
    if (fd_ >= 0) return nullptr;
    return blocks_[cell / pages_per_block_] + (cell % pages_per_block_) * page_bytes_;
  }

 private:
  static constexpr int64_t kBlockBytes = int64_t{64} << 20;

  void open_file(const std::string& path, bool overwrite) {
    // Not O_TRUNC: the file is emptied only once it is known to be ours.
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      open_error_ = std::string("must be a writable file path: ") + std::strerror(errno);
      return;
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
      return fail_open(std::string("cannot be examined: ") + std::strerror(errno));
    regular_file_ = S_ISREG(st.st_mode);
    if (!regular_file_) return;  // a device (e.g. /dev/full in tests): nothing to lock or empty
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return fail_open(errno == EWOULDBLOCK
                           ? std::string("is in use by another cache (its lock is held): give each "
                                         "cache its own mirror file")
                           : std::string("cannot be locked: ") + std::strerror(errno));
    }
    // fstat again under the lock: the size another cache left is only final now.
    if (::fstat(fd_, &st) != 0)
      return fail_open(std::string("cannot be examined: ") + std::strerror(errno));
    if (st.st_size > 0 && !overwrite) {
      return fail_open("exists and is not empty (" + std::to_string(st.st_size) +
                       " bytes): set mirror_overwrite = true to discard its contents, or choose "
                       "another path");
    }
    if (st.st_size > 0 && ::ftruncate(fd_, 0) != 0) {
      return fail_open(std::string("cannot be emptied: ") + std::strerror(errno));
    }
  }

  void fail_open(std::string why) {
    open_error_ = std::move(why);
    ::close(fd_);  // releases the lock if we took it; the file is left as it was
    fd_ = -1;
    regular_file_ = false;
  }

  Status check(int64_t cell, const std::byte* page) const noexcept {
    if (!digests_on_ || page_digest(page, page_bytes_) == digests_[static_cast<size_t>(cell)]) {
      return Status::kOk;
    }
    return Status::kCorrupt;
  }

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
  bool digests_on_;
  int64_t pages_per_block_ = 1;
  int fd_ = -1;
  bool regular_file_ = false;
  std::string open_error_;
  int64_t next_ = 0;
  std::vector<int64_t> free_;
  std::vector<std::byte*> blocks_;  // arenas of pages_per_block_ cells, from arenas_
  std::vector<uint64_t> digests_;   // per cell, with digests
  mutable std::unique_ptr<std::byte[]> scratch_;  // a file page being checked (engine thread)
};

}  // namespace lsa::detail
