// Caller-owned buffers that a step fills with the attention view, in three formats.
#pragma once

#include <cstdint>
#include <vector>

namespace lsa {

/// Where step() writes the view of a batch; a format whose pointers are null is skipped.
/// Every entry up to each buffer's stated capacity is written (padding is -1).
struct ViewBuffers {
  int32_t* indptr = nullptr;         ///< CSR [batch + 1]: sequence b owns indices[indptr[b], indptr[b+1])
  int32_t* indices = nullptr;        ///< CSR [indices_capacity]: reserve slots in logical page order
  int64_t indices_capacity = 0;      ///< entries indices can hold
  int32_t* last_page_len = nullptr;  ///< CSR [batch]: tokens in each sequence's last (tail) page
  int32_t* slot_lists = nullptr;     ///< [batch][slot_list_width]: slots in logical order, -1 padded
  int32_t slot_list_width = 0;       ///< row width of slot_lists
  int32_t* block_table = nullptr;    ///< [batch][block_table_width]: logical page -> slot or -1
  int32_t block_table_width = 0;     ///< row width of block_table
};

/// Owns view buffers of fixed capacity (allocated once) and hands out ViewBuffers over them.
class ViewStorage {
 public:
  /// Room for `max_batch` sequences, `max_pages_per_seq` resident pages and `max_logical_pages`
  /// logical pages per sequence.
  ViewStorage(int32_t max_batch, int32_t max_pages_per_seq, int32_t max_logical_pages)
      : indptr(static_cast<size_t>(max_batch) + 1),
        indices(static_cast<size_t>(max_batch) * max_pages_per_seq),
        last_page_len(static_cast<size_t>(max_batch)),
        slot_lists(static_cast<size_t>(max_batch) * max_pages_per_seq),
        block_table(static_cast<size_t>(max_batch) * max_logical_pages),
        slot_list_width_(max_pages_per_seq),
        block_table_width_(max_logical_pages) {}

  /// All three formats over this storage.
  ViewBuffers buffers() noexcept {
    return {indptr.data(),      indices.data(),    static_cast<int64_t>(indices.size()),
            last_page_len.data(), slot_lists.data(), slot_list_width_,
            block_table.data(), block_table_width_};
  }

  std::vector<int32_t> indptr;         ///< CSR offsets
  std::vector<int32_t> indices;        ///< CSR slots
  std::vector<int32_t> last_page_len;  ///< CSR tail lengths
  std::vector<int32_t> slot_lists;     ///< padded slot lists
  std::vector<int32_t> block_table;    ///< block table

 private:
  int32_t slot_list_width_;
  int32_t block_table_width_;
};

}  // namespace lsa
