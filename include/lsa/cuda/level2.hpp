// Level 2 on the device: the model indexer's top-k chunks, confined to the resident pages, as
// reserve positions for a sparse attention kernel (FlashMLA-style token indices).
#pragma once

#include <cstdint>

#include "lsa/chunker.hpp"
#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/view_builder.hpp"

namespace lsa::cuda {

/// Largest k level2_select takes.
inline constexpr int32_t kLevel2MaxK = 4096;

/// lsa::level2_select of the whole batch on the device, byte-identical to the host: row b of
/// d_out ([num_batch][k]) holds the reserve positions `slot * page_chunks + chunk_in_page` of the
/// k best chunks of sequence b (logits d_logits[b * logits_stride + chunk], chunks below
/// chunker.num_chunks(num_tokens) of its resident pages; best first, ties to the lower chunk, NaN
/// never chosen), then -1 up to k. With chunk_tokens == 1 a position is the token's index into
/// the paged KV cache.
///
/// When d_status is not null, *d_status receives an lsa::Status value: kOk, or kInvalidArgument
/// when a sequence's resident set cannot be read (the rules of lsa::level2_select: num_tokens < 0,
/// num_chunks(num_tokens) > logits_stride, pages not strictly ascending or outside
/// [0, num_pages) or past page_slots_stride, a negative slot or one whose positions overflow
/// int32); that row is all -1, the other rows are written. One kernel (plus a memset of
/// d_status), one thread block per sequence; no allocation, no synchronization: capturable in a
/// CUDA graph and replayed as the table and the logits change.
///
/// Returns kInvalidValue for k < 1, negative strides or sizes, or missing pointers (d_status may
/// be null); kNotSupported for k > kLevel2MaxK.
[[nodiscard]] CudaError level2_select(const DeviceBatchTable& table, const float* d_logits,
                                      int64_t logits_stride, Chunker chunker, int32_t k,
                                      int32_t* d_out, int32_t* d_status, Stream stream) noexcept;

}  // namespace lsa::cuda
