// Lightning scoring on the device: a CUDA-core reference kernel, a tensor-core kernel, the fused
// page-statistics epilogue and the launcher.
//
// Floors (H100, H=64, D=128, one layer, 1M tokens = 262,144 chunks of 132 B): 34.6 MB of keys,
// about 11.5 us at 3 TB/s; 2.1 G multiply-adds per query term, about 4.4 us of fp16 tensor work at
// the dense mma rate. The tensor kernel streams key tiles through shared memory with cp.async (a
// few tiles in flight per SM) and runs m16n8k16 fp16 mma with the query as the A operand (16 heads
// per warp, held in registers) and the chunks as the B operand, converting fp8 to fp16 by bit
// moves; the epilogue (relu, head weights, head sum, layer ensemble, sigmoid, page statistics)
// never leaves the SM.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "detail/common.cuh"
#include "detail/fp8_device.cuh"
#include "lsa/cuda/lightning.hpp"
#include "lsa/cuda/page_stats.hpp"

namespace lsa::cuda {
namespace detail {

cudaError_t current_device_info(DeviceInfo& info) noexcept {
  constexpr int kMaxDevices = 64;
  static std::atomic<bool> ready[kMaxDevices];
  static DeviceInfo cache[kMaxDevices];
  static std::mutex mutex;
  int device = 0;
  if (cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return e;
  if (device < 0 || device >= kMaxDevices) return cudaErrorInvalidDevice;
  if (ready[device].load(std::memory_order_acquire)) {
    info = cache[device];
    return cudaSuccess;
  }
  // Only a success is kept: a failed query (a transient error, a device not yet usable) is asked
  // again by the next call instead of being reported forever.
  std::lock_guard lock(mutex);
  if (!ready[device].load(std::memory_order_relaxed)) {
    DeviceInfo d;
    d.device = device;
    cudaError_t e = cudaDeviceGetAttribute(&d.num_sms, cudaDevAttrMultiProcessorCount, device);
    if (e == cudaSuccess) {
      e = cudaDeviceGetAttribute(&d.max_smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    }
    if (e == cudaSuccess) {
      e = cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, device);
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return e;
    }
    cache[device] = d;
    ready[device].store(true, std::memory_order_release);
  }
  info = cache[device];
  return cudaSuccess;
}

namespace {

// ---- shared shapes -------------------------------------------------------------------------

constexpr int kMmaThreads = 128;  // 4 warps
constexpr int kMmaWarps = kMmaThreads / 32;
constexpr int kMaxHeads = 128;
constexpr int kTensorHeadDim = 128;
constexpr int kMaxTensorLayers = 6;  // two stages of the tile (128 or 256 rows of 132 * L bytes)
constexpr int kSimtChunks = 32;      // chunks per CUDA-core block
constexpr int kSimtThreads = 256;    // 8 threads per chunk
constexpr int kPageThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- page statistics from scores ------------------------------------------------------------

__global__ void page_stats_kernel(const float* __restrict__ scores, int64_t num_chunks,
                                  int64_t num_pages, int32_t page_chunks, float threshold,
                                  int32_t* __restrict__ kept, float* __restrict__ mass) {
  const int64_t page = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (page >= num_pages) return;
  int32_t count;
  float sum;
  kept_page_stats(scores, num_chunks, page, page_chunks, [&](int64_t c) { return scores[c] > threshold; },
                  count, sum);
  kept[page] = count;
  if (mass != nullptr) mass[page] = sum;
}

// ---- CUDA-core reference kernel ---------------------------------------------------------------

struct SimtArgs {
  const uint8_t* rows;
  int64_t num_chunks;
  int32_t num_layers;
  int32_t num_heads;
  int32_t head_dim;
  int32_t row_bytes;
  int32_t vector_bytes;
  const float* q;
  const float* weights;
  float logit_offset;
  bool max_ensemble;
  float* scores;
};

// 32 chunks per block; 8 threads per chunk split the heads, then sum their partial logits.
__global__ void __launch_bounds__(kSimtThreads) lightning_simt_kernel(SimtArgs a) {
  extern __shared__ float4 simt_smem[];
  const int stride = a.head_dim + 4;  // floats per decoded row (padding keeps float4 alignment)
  float* keys = reinterpret_cast<float*>(simt_smem);
  float* scales = keys + kSimtChunks * stride;
  const int tid = static_cast<int>(threadIdx.x);
  const int row = tid / 8;
  const int lane_in_row = tid % 8;
  const int64_t base = int64_t{blockIdx.x} * kSimtChunks;
  const int words = a.head_dim / 4;
  float ensemble = 0.0f;
  for (int l = 0; l < a.num_layers; ++l) {
    for (int i = tid; i < kSimtChunks * words; i += kSimtThreads) {
      const int r = i / words;
      const int w = i % words;
      const int64_t chunk = base + r;
      uint32_t x = 0;
      if (chunk < a.num_chunks) {
        x = *reinterpret_cast<const uint32_t*>(a.rows + chunk * a.row_bytes +
                                               int64_t{l} * a.vector_bytes + 4 * w);
      }
      float v[4];
      e4m3x4_to_float4(x, v);
      *reinterpret_cast<float4*>(keys + r * stride + 4 * w) = make_float4(v[0], v[1], v[2], v[3]);
    }
    if (tid < kSimtChunks) {
      const int64_t chunk = base + tid;
      scales[tid] = chunk < a.num_chunks
                        ? *reinterpret_cast<const float*>(a.rows + chunk * a.row_bytes +
                                                          int64_t{l} * a.vector_bytes + a.head_dim)
                        : 0.0f;
    }
    __syncthreads();
    const float* key = keys + row * stride;
    const float scale = scales[row];
    float sum = 0.0f;
    for (int h = lane_in_row; h < a.num_heads; h += 8) {
      const float4* qh =
          reinterpret_cast<const float4*>(a.q + (int64_t{l} * a.num_heads + h) * a.head_dim);
      float dot = 0.0f;
      for (int w = 0; w < words; ++w) {
        const float4 qv = __ldg(qh + w);
        const float4 kv = *reinterpret_cast<const float4*>(key + 4 * w);
        dot = fmaf(qv.x, kv.x, dot);
        dot = fmaf(qv.y, kv.y, dot);
        dot = fmaf(qv.z, kv.z, dot);
        dot = fmaf(qv.w, kv.w, dot);
      }
      sum += a.weights[l * a.num_heads + h] * fmaxf(scale * dot, 0.0f);
    }
    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 1);
    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 2);
    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 4);
    const float x = sum + a.logit_offset;
    if (a.max_ensemble) {
      ensemble = l == 0 ? x : fmaxf(ensemble, x);
    } else {
      ensemble = l == 0 ? sigmoid(x) : ensemble + sigmoid(x);
    }
    __syncthreads();
  }
  const int64_t chunk = base + row;
  if (lane_in_row == 0 && chunk < a.num_chunks) {
    a.scores[chunk] = a.max_ensemble ? sigmoid(ensemble)
                      : a.num_layers == 1 ? ensemble
                                          : ensemble / static_cast<float>(a.num_layers);
  }
}

// ---- query preparation for the tensor kernel ------------------------------------------------

// One block per (8-head n-tile, layer), one warp per head. Each head is scaled by a power of two so
// its largest |q| lands in [2^14, 2^15) (fp16 keeps 11 bits there and cannot overflow), split into
// fp16 hi + lo, and stored in mma B-fragment order; the head weight absorbs the scale and the 2^-8
// of the fp8 -> fp16 conversion, so w' * relu(acc) = w * relu(q.k) up to rounding.
//
// The d dimension is permuted inside each 16-wide k-step so that a thread's four A values of a row
// are four consecutive key bytes (one 32-bit shared-memory load): logical k {2t, 2t+1, 2t+8, 2t+9}
// of the mma fragments is physical d {4t, 4t+1, 4t+2, 4t+3}. B (the query) uses the same map, so a
// B fragment is the four consecutive query values of head g at d = 16 ks + 4t.
__global__ void __launch_bounds__(256) prepare_query_kernel(const float* __restrict__ q,
                                                            const float* __restrict__ weights,
                                                            int32_t num_heads, int32_t num_ntiles,
                                                            uint2* __restrict__ frags,
                                                            float* __restrict__ scaled_weights) {
  __shared__ __align__(16) float qs[8][kTensorHeadDim];
  __shared__ int exps[8];
  const int ntile = static_cast<int>(blockIdx.x);
  const int layer = static_cast<int>(blockIdx.y);
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int head = ntile * 8 + warp;
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (head < num_heads) {
    v = reinterpret_cast<const float4*>(
        q + (int64_t{layer} * num_heads + head) * kTensorHeadDim)[lane];
  }
  *reinterpret_cast<float4*>(&qs[warp][4 * lane]) = v;
  float m = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  if (lane == 0) {
    int e = 0;
    if (m > 0.0f) {
      int x;
      frexpf(m, &x);  // m = f * 2^x, f in [0.5, 1)
      e = min(max(15 - x, -100), 100);
    }
    exps[warp] = e;
    scaled_weights[(layer * num_ntiles + ntile) * 8 + warp] =
        head < num_heads ? ldexpf(weights[layer * num_heads + head], 8 - e) : 0.0f;
  }
  __syncthreads();
  for (int i = tid; i < 8 * 2 * 32; i += 256) {  // [k-step][hi, lo][lane]
    const int frag_lane = i % 32;
    const int part = (i / 32) % 2;
    const int ks = i / 64;
    const int g = frag_lane / 4;
    const int d = 16 * ks + 4 * (frag_lane % 4);
    uint32_t regs[2];
    for (int r = 0; r < 2; ++r) {
      __half out[2];
      for (int u = 0; u < 2; ++u) {
        const float x = ldexpf(qs[g][d + 2 * r + u], exps[g]);
        const __half hi = __float2half_rn(x);
        out[u] = part == 0 ? hi : __float2half_rn(x - __half2float(hi));
      }
      regs[r] = static_cast<uint32_t>(__half_as_ushort(out[0])) |
                (static_cast<uint32_t>(__half_as_ushort(out[1])) << 16);
    }
    frags[((int64_t{layer} * 8 + ks) * num_ntiles + ntile) * 64 + part * 32 + frag_lane] =
        make_uint2(regs[0], regs[1]);
  }
}

// ---- tensor-core kernel ----------------------------------------------------------------------

struct MmaArgs {
  const uint8_t* rows;
  int64_t num_chunks;
  int64_t num_tiles;
  int32_t num_layers;
  int32_t row_bytes;
  int32_t vector_bytes;
  int32_t stages;
  bool stage_query;    // copy frags into shared memory after the tiles
  const uint2* frags;  // [layers][8 k-steps][kNT][hi, lo][32 lanes]
  const float* scaled_weights;  // [layers][kNT * 8]
  float logit_offset;
  bool max_ensemble;
  float* scores;
  float threshold;
  int32_t page_chunks;  // fused statistics when kept != nullptr (page_chunks divides the tile)
  int32_t* kept;
  float* mass;
};

__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* gmem_src, int src_bytes) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_4(void* smem_dst, const void* gmem_src) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(gmem_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Shapes of one instantiation: kNT 8-head n-tiles; each warp owns kM m-tiles (16 chunks each) and
// every head, so each key byte is loaded and converted once and reused by all kNT n-tiles.
template <int kNT, int kMTiles>
struct MmaShape {
  static constexpr int kM = kMTiles;  // accumulators: kM * kNT * 4 <= 128 registers
  static constexpr int kWarpChunks = 16 * kM;
  static constexpr int kTile = kMmaWarps * kWarpChunks;  // 128 or 256 chunks
};

// Chunk (within the warp's slab) of row g (half 0) or g + 8 (half 1) of m-tile m. Inside each
// 32-chunk group the 8 rows one load reads are chunks 4g + const, whose 132 * L-byte rows start in
// distinct banks when L is odd; the 4 (m, half) pairs of a group cover its 32 chunks.
__device__ __forceinline__ int slab_chunk(int m, int half, int g) {
  return 32 * (m / 2) + 4 * g + 2 * (m % 2) + half;
}

// Persistent: each block walks tiles blockIdx.x, +gridDim.x, ...; `stages` tiles in shared memory,
// stages - 1 of them in flight (cp.async, zero-filled past the last chunk). Scores leave through
// registers (ensemble) and shared memory (page statistics).
template <int kNT, int kMTiles, bool kSplit>
__global__ void __launch_bounds__(kMmaThreads) lightning_mma_kernel(MmaArgs a) {
  using Shape = MmaShape<kNT, kMTiles>;
  constexpr int kM = Shape::kM;
  constexpr int kTile = Shape::kTile;
  extern __shared__ uint4 mma_smem[];
  uint8_t* smem = reinterpret_cast<uint8_t*>(mma_smem);
  const int tile_bytes = kTile * a.row_bytes;
  float* tile_scores = reinterpret_cast<float*>(smem + a.stages * tile_bytes);  // [kTile]
  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;
  const int t = lane % 4;
  const int warp_base = warp * Shape::kWarpChunks;
  const bool fused = a.kept != nullptr;

  auto load_tile = [&](int64_t tile, int stage) {
    const uint8_t* src = a.rows + tile * tile_bytes;
    const int64_t valid = min(int64_t{kTile}, a.num_chunks - tile * kTile) * a.row_bytes;
    uint8_t* dst = smem + stage * tile_bytes;
    for (int off = tid * 16; off < tile_bytes; off += kMmaThreads * 16) {
      const int64_t bytes = valid - off;  // a multiple of 4: rows are 132 * L bytes
      if (bytes >= 16) {
        cp_async_16(dst + off, src + off, 16);
      } else {
        // Past the last chunk: zeros (never read past the caller's rows, not even by 16-byte
        // copies that would zero-fill).
        for (int w = 0; w < 4; ++w) {
          if (4 * w < bytes) {
            cp_async_4(dst + off + 4 * w, src + off + 4 * w);
          } else {
            *reinterpret_cast<uint32_t*>(dst + off + 4 * w) = 0;
          }
        }
      }
    }
  };

  // The query fragments are read by every warp for every tile: from shared memory when the
  // launcher made room for them (copied once per block), else through L1.
  const uint2* q_frags = a.frags;
  if (a.stage_query) {
    uint4* staged = reinterpret_cast<uint4*>(smem + a.stages * tile_bytes + kTile * sizeof(float));
    const uint4* src = reinterpret_cast<const uint4*>(a.frags);
    const int n = a.num_layers * 8 * kNT * 64 / 2;
    for (int i = tid; i < n; i += kMmaThreads) staged[i] = src[i];
    q_frags = reinterpret_cast<const uint2*>(staged);  // visible after the first tile's barrier
  }

  const int64_t first = blockIdx.x;
  const int64_t step = gridDim.x;
  for (int s = 0; s < a.stages - 1; ++s) {
    const int64_t tile = first + s * step;
    if (tile < a.num_tiles) load_tile(tile, s);
    cp_async_commit();
  }
  for (int64_t it = 0;; ++it) {
    const int64_t tile = first + it * step;
    if (tile >= a.num_tiles) break;
    const int64_t ahead = first + (it + a.stages - 1) * step;
    if (ahead < a.num_tiles) load_tile(ahead, static_cast<int>((it + a.stages - 1) % a.stages));
    cp_async_commit();
    if (a.stages == 3) {
      cp_async_wait<2>();
    } else {
      cp_async_wait<1>();
    }
    __syncthreads();
    const uint8_t* buf = smem + (it % a.stages) * tile_bytes;

    float ensemble[kM][2];
    for (int l = 0; l < a.num_layers; ++l) {
      const uint8_t* layer_buf = buf + l * a.vector_bytes;
      int row[kM][2];  // byte offsets in layer_buf (32-bit: fewer registers than pointers)
      float scale_abs[kM][2];
      uint32_t flip[kM][2];  // a negative scale negates the row: relu(s x) = |s| relu(-x)
#pragma unroll
      for (int m = 0; m < kM; ++m) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          row[m][h] = (warp_base + slab_chunk(m, h, g)) * a.row_bytes;
          const float s = *reinterpret_cast<const float*>(layer_buf + row[m][h] + kTensorHeadDim);
          scale_abs[m][h] = fabsf(s);
          flip[m][h] = s < 0.0f ? 0x80008000u : 0u;
        }
      }
      float acc[kM][kNT][4];
#pragma unroll
      for (int m = 0; m < kM; ++m) {
#pragma unroll
        for (int n = 0; n < kNT; ++n) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;
      }
      const uint2* fq = q_frags + int64_t{l} * 8 * kNT * 64 + lane;
      // Key words of the next k-step are loaded while this one's products run.
      uint32_t next[kM][2];
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        next[m][0] = *reinterpret_cast<const uint32_t*>(layer_buf + 4 * t + row[m][0]);
        next[m][1] = *reinterpret_cast<const uint32_t*>(layer_buf + 4 * t + row[m][1]);
      }
#pragma unroll 1
      for (int ks = 0; ks < 8; ++ks) {
        uint32_t words[kM][2];
#pragma unroll
        for (int m = 0; m < kM; ++m) {
          words[m][0] = next[m][0];
          words[m][1] = next[m][1];
          if (ks < 7) {
            const uint8_t* k = layer_buf + 16 * (ks + 1) + 4 * t;
            next[m][0] = *reinterpret_cast<const uint32_t*>(k + row[m][0]);
            next[m][1] = *reinterpret_cast<const uint32_t*>(k + row[m][1]);
          }
        }
        uint32_t af[kM][4];
#pragma unroll
        for (int m = 0; m < kM; ++m) {
          uint32_t lo0, hi0, lo1, hi1;
          e4m3x4_to_half2x2_scaled(words[m][0], lo0, hi0);
          e4m3x4_to_half2x2_scaled(words[m][1], lo1, hi1);
          af[m][0] = lo0 ^ flip[m][0];
          af[m][1] = lo1 ^ flip[m][1];
          af[m][2] = hi0 ^ flip[m][0];
          af[m][3] = hi1 ^ flip[m][1];
        }
        // Every hi product, then every lo product: kM * kNT independent mma between two that
        // accumulate into the same registers.
#pragma unroll
        for (int n = 0; n < kNT; ++n) {
          const uint2 bh = fq[(ks * kNT + n) * 64];
#pragma unroll
          for (int m = 0; m < kM; ++m) mma_16816(acc[m][n], af[m], bh.x, bh.y);
        }
        if constexpr (kSplit) {
#pragma unroll
          for (int n = 0; n < kNT; ++n) {
            const uint2 bl = fq[(ks * kNT + n) * 64 + 32];
#pragma unroll
            for (int m = 0; m < kM; ++m) mma_16816(acc[m][n], af[m], bl.x, bl.y);
          }
        }
      }
      // acc[m][n] = (rows g, g + 8) x (heads 8n + 2t, 8n + 2t + 1).
      const float* w = a.scaled_weights + l * kNT * 8 + 2 * t;
      float v[kM][2];
#pragma unroll
      for (int m = 0; m < kM; ++m) v[m][0] = v[m][1] = 0.0f;
#pragma unroll
      for (int n = 0; n < kNT; ++n) {
        const float2 wn = __ldg(reinterpret_cast<const float2*>(w + 8 * n));
#pragma unroll
        for (int m = 0; m < kM; ++m) {
          v[m][0] += wn.x * fmaxf(acc[m][n][0], 0.0f) + wn.y * fmaxf(acc[m][n][1], 0.0f);
          v[m][1] += wn.x * fmaxf(acc[m][n][2], 0.0f) + wn.y * fmaxf(acc[m][n][3], 0.0f);
        }
      }
#pragma unroll
      for (int m = 0; m < kM; ++m) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float x = v[m][h];
          x += __shfl_xor_sync(0xFFFFFFFFu, x, 1);
          x += __shfl_xor_sync(0xFFFFFFFFu, x, 2);
          x = scale_abs[m][h] * x + a.logit_offset;
          if (a.max_ensemble) {
            ensemble[m][h] = l == 0 ? x : fmaxf(ensemble[m][h], x);
          } else {
            ensemble[m][h] = l == 0 ? sigmoid(x) : ensemble[m][h] + sigmoid(x);
          }
        }
      }
    }
    if (t == 0) {
#pragma unroll
      for (int m = 0; m < kM; ++m) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float e = ensemble[m][h];
          const float score = a.max_ensemble     ? sigmoid(e)
                              : a.num_layers == 1 ? e
                                                  : e / static_cast<float>(a.num_layers);
          const int c = warp_base + slab_chunk(m, h, g);
          const int64_t chunk = tile * kTile + c;
          if (chunk < a.num_chunks) a.scores[chunk] = score;
          tile_scores[c] = score;
        }
      }
    }
    if (fused) {
      __syncthreads();
      const int pages_per_tile = kTile / a.page_chunks;
      for (int p = tid; p < pages_per_tile; p += kMmaThreads) {
        const int64_t page = tile * pages_per_tile + p;
        const int64_t begin = page * a.page_chunks;
        if (begin < a.num_chunks) {
          const int n = static_cast<int>(min(int64_t{a.page_chunks}, a.num_chunks - begin));
          int32_t count = 0;
          float sum = 0.0f;
          for (int c = 0; c < n; ++c) {  // chunk order, as the host policy adds
            const float s = tile_scores[p * a.page_chunks + c];
            const bool k = s > a.threshold;
            count += k ? 1 : 0;
            sum += k ? s : 0.0f;
          }
          a.kept[page] = count;
          if (a.mass != nullptr) a.mass[page] = sum;
        }
      }
    }
    __syncthreads();  // the stage buffer and tile_scores are reused
  }
  cp_async_wait<0>();
}

// ---- launch helpers -----------------------------------------------------------------------------

// Head n-tiles of the instantiation that serves `num_heads` (heads past num_heads are zero).
int mma_ntiles(int32_t num_heads) { return num_heads <= 32 ? 4 : num_heads <= 64 ? 8 : 16; }

// m-tiles per warp: 4 (256-chunk tiles; accumulators kM * kNT * 4 = 128 registers at H = 64)
// while two such tiles of up to two layers fit, else 2 (128-chunk tiles).
int mma_mtiles(const ScorerConfig& c) {
  return mma_ntiles(c.num_heads) == 8 && c.num_layers <= 2 ? 4 : 2;
}

int mma_tile_chunks(const ScorerConfig& c) { return kMmaWarps * 16 * mma_mtiles(c); }

size_t mma_tile_bytes(const ScorerConfig& c) {
  return static_cast<size_t>(mma_tile_chunks(c)) * (c.head_dim + 4) * c.num_layers;
}

size_t mma_query_bytes(const ScorerConfig& c) {
  return size_t{8} * mma_ntiles(c.num_heads) * 64 * sizeof(uint2) * c.num_layers;
}

// Shared memory plan: the query fragments go to shared memory when two tile stages plus them
// leave room for two blocks per SM; otherwise three stages while they stay small, else two.
struct MmaSmemPlan {
  int stages;
  bool stage_query;
  size_t bytes;
};

MmaSmemPlan mma_smem_plan(const ScorerConfig& c) {
  const size_t tile = mma_tile_bytes(c);
  const size_t scores = static_cast<size_t>(mma_tile_chunks(c)) * sizeof(float);
  if (2 * tile + scores + mma_query_bytes(c) <= 110 * 1024) {
    return {2, true, 2 * tile + scores + mma_query_bytes(c)};
  }
  const int stages = 3 * tile <= 104 * 1024 ? 3 : 2;
  return {stages, false, stages * tile + scores};
}

size_t mma_smem_bytes(const ScorerConfig& c) { return mma_smem_plan(c).bytes; }

bool tensor_shapes(const ScorerConfig& c) {
  return c.head_dim == kTensorHeadDim && c.num_layers <= kMaxTensorLayers;
}

template <int kNT, int kMTiles, bool kSplit>
cudaError_t launch_mma(const MmaArgs& args, size_t smem, const DeviceInfo& info,
                       cudaStream_t stream) {
  auto kernel = lightning_mma_kernel<kNT, kMTiles, kSplit>;
  LSA_CUDA_TRY_RAW(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem)));
  int per_sm = 0;
  LSA_CUDA_TRY_RAW(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kMmaThreads,
                                                                 smem));
  const int64_t blocks = std::min<int64_t>(args.num_tiles, int64_t{std::max(per_sm, 1)} * info.num_sms);
  kernel<<<static_cast<unsigned>(blocks), kMmaThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

template <bool kSplit>
cudaError_t launch_mma_heads(int ntiles, int mtiles, const MmaArgs& args, size_t smem,
                             const DeviceInfo& info, cudaStream_t stream) {
  switch (ntiles) {
    case 4: return launch_mma<4, 2, kSplit>(args, smem, info, stream);
    case 8:
      return mtiles == 2 ? launch_mma<8, 2, kSplit>(args, smem, info, stream)
                         : launch_mma<8, 4, kSplit>(args, smem, info, stream);
    default: return launch_mma<16, 2, kSplit>(args, smem, info, stream);
  }
}

}  // namespace
}  // namespace detail

LightningMath resolve_lightning_math(const ScorerConfig& config, LightningMath math) noexcept {
  if (math != LightningMath::kAuto) return math;
  detail::DeviceInfo info;
  if (detail::current_device_info(info) != cudaSuccess) return LightningMath::kCudaCore;
  const bool fits = info.max_smem_optin >= static_cast<int>(detail::mma_smem_bytes(config));
  return detail::tensor_shapes(config) && info.cc_major >= 8 && fits ? LightningMath::kTensorSplit
                                                                      : LightningMath::kCudaCore;
}

CudaError compute_page_stats(const float* d_scores, int64_t num_chunks, const PageStats& stats,
                             Stream stream) noexcept {
  if (stats.page_chunks < 1 || num_chunks < 0 || (stats.d_mass != nullptr && stats.d_kept == nullptr)) {
    return CudaError::kInvalidValue;
  }
  if (stats.d_kept == nullptr || num_chunks == 0) return CudaError::kSuccess;
  if (d_scores == nullptr) return CudaError::kInvalidValue;
  const int64_t pages = num_stat_pages(num_chunks, stats.page_chunks);
  detail::page_stats_kernel<<<static_cast<unsigned>(detail::ceil_div(pages, detail::kPageThreads)),
                              detail::kPageThreads, 0, stream>>>(
      d_scores, num_chunks, pages, stats.page_chunks, stats.threshold, stats.d_kept, stats.d_mass);
  return detail::launch_error();
}

CudaError lightning_score(void* d_workspace, size_t& workspace_bytes, const ScorerConfig& config,
                          const LightningInput& input, float* d_scores, const PageStats& stats,
                          LightningMath math, Stream stream) noexcept {
  using namespace detail;
  const ScorerConfig& c = config;
  if (c.key_format != KeyFormat::kFp8E4M3 || c.num_key_heads != 1 || c.num_layers < 1 ||
      c.num_heads < 1 || c.num_heads > kMaxHeads || c.head_dim < 4 || c.head_dim % 4 != 0 ||
      c.head_dim > 1024 || (c.ensemble != Ensemble::kMax && c.ensemble != Ensemble::kMean) ||
      !std::isfinite(c.logit_offset)) {
    return CudaError::kInvalidValue;
  }
  const LightningMath resolved = resolve_lightning_math(c, math);
  const bool tensor = resolved == LightningMath::kTensorSplit || resolved == LightningMath::kTensorFast;
  if (tensor && !tensor_shapes(c)) return CudaError::kNotSupported;
  DeviceInfo info;
  if (tensor) {
    // Checked by the workspace query too, so that a caller learns it before its first scoring
    // (e.g. 5 layers at H = 128 on sm_80 need more shared memory than the card has).
    LSA_CUDA_TRY(current_device_info(info));
    if (mma_smem_bytes(c) > static_cast<size_t>(info.max_smem_optin)) {
      return CudaError::kNotSupported;
    }
  }
  const int ntiles = mma_ntiles(c.num_heads);
  WorkspaceCarver carver(d_workspace);
  uint2* frags = nullptr;
  float* scaled_weights = nullptr;
  if (tensor) {
    frags = carver.take<uint2>(size_t{8} * ntiles * 64 * c.num_layers);
    scaled_weights = carver.take<float>(size_t{8} * ntiles * c.num_layers);
  }
  if (d_workspace == nullptr) {
    workspace_bytes = std::max<size_t>(carver.used(), 1);  // never 0: a non-null pointer runs
    return CudaError::kSuccess;
  }
  if (workspace_bytes < carver.used() || input.num_chunks < 0 ||
      (stats.d_kept != nullptr && stats.page_chunks < 1) ||
      (stats.d_mass != nullptr && stats.d_kept == nullptr)) {
    return CudaError::kInvalidValue;
  }
  if (input.num_chunks == 0) return CudaError::kSuccess;
  if (input.d_rows == nullptr || input.d_q == nullptr || input.d_weights == nullptr ||
      d_scores == nullptr || !aligned(input.d_q, 16) ||
      !aligned(input.d_rows, tensor ? 16 : 4)) {
    return CudaError::kInvalidValue;
  }
  const auto* rows = reinterpret_cast<const uint8_t*>(input.d_rows);
  const int32_t vector_bytes = c.head_dim + 4;
  const int32_t row_bytes = vector_bytes * c.num_layers;
  bool stats_done = stats.d_kept == nullptr;
  if (!tensor) {
    SimtArgs args{rows,         input.num_chunks, c.num_layers, c.num_heads,
                  c.head_dim,   row_bytes,        vector_bytes, input.d_q,
                  input.d_weights, c.logit_offset, c.ensemble == Ensemble::kMax, d_scores};
    const size_t smem = (size_t{kSimtChunks} * (c.head_dim + 4) + kSimtChunks) * sizeof(float);
    LSA_CUDA_TRY(cudaFuncSetAttribute(lightning_simt_kernel,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
    lightning_simt_kernel<<<static_cast<unsigned>(ceil_div(input.num_chunks, kSimtChunks)),
                            kSimtThreads, smem, stream>>>(args);
    LSA_CUDA_TRY(cudaGetLastError());
  } else {
    prepare_query_kernel<<<dim3(static_cast<unsigned>(ntiles), static_cast<unsigned>(c.num_layers)),
                           256, 0, stream>>>(input.d_q, input.d_weights, c.num_heads, ntiles, frags,
                                             scaled_weights);
    LSA_CUDA_TRY(cudaGetLastError());
    const int tile_chunks = mma_tile_chunks(c);
    const MmaSmemPlan plan = mma_smem_plan(c);
    const bool fuse = stats.d_kept != nullptr && tile_chunks % stats.page_chunks == 0;
    MmaArgs args{};
    args.rows = rows;
    args.num_chunks = input.num_chunks;
    args.num_tiles = ceil_div(input.num_chunks, tile_chunks);
    args.num_layers = c.num_layers;
    args.row_bytes = row_bytes;
    args.vector_bytes = vector_bytes;
    args.stages = plan.stages;
    args.stage_query = plan.stage_query;
    args.frags = frags;
    args.scaled_weights = scaled_weights;
    args.logit_offset = c.logit_offset;
    args.max_ensemble = c.ensemble == Ensemble::kMax;
    args.scores = d_scores;
    args.threshold = stats.threshold;
    args.page_chunks = stats.page_chunks;
    args.kept = fuse ? stats.d_kept : nullptr;
    args.mass = fuse ? stats.d_mass : nullptr;
    const size_t smem = plan.bytes;
    const cudaError_t e = resolved == LightningMath::kTensorSplit
                              ? launch_mma_heads<true>(ntiles, mma_mtiles(c), args, smem, info, stream)
                              : launch_mma_heads<false>(ntiles, mma_mtiles(c), args, smem, info, stream);
    LSA_CUDA_TRY(e);
    stats_done = stats_done || fuse;
  }
  if (!stats_done) return compute_page_stats(d_scores, input.num_chunks, stats, stream);
  return CudaError::kSuccess;
}

}  // namespace lsa::cuda
