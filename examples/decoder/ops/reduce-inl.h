// Lane sums shared by the SIMD kernels: a Highway "-inl" header, included once per target by the
// files that include themselves through hwy/foreach_target.h (hence the toggling guard).
#if defined(LSA_DECODE_OPS_REDUCE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LSA_DECODE_OPS_REDUCE_INL_H_
#undef LSA_DECODE_OPS_REDUCE_INL_H_
#else
#define LSA_DECODE_OPS_REDUCE_INL_H_
#endif

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace lsa_decode {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
// Stores the sum of v's 128-bit blocks (4 floats) at out, halving until one block is left.
template <class D, class V>
HWY_INLINE void store_block_sum(D d, V v, float* out) {
  if constexpr (hn::MaxLanes(D()) > 4) {
    const hn::Half<D> dh;
    store_block_sum(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)), out);
  } else {
    hn::StoreU(v, d, out);
  }
}
#endif

// out[0..3] = the lane sums of a, b, c and e with one transpose-and-add tree, about a third of
// the shuffles of four separate reductions (the dot-product kernels end every block with these).
// Each sum's additions come in a fixed order, whichever vectors it is reduced with.
template <class D, class V>
HWY_INLINE void sum_lanes4(D d, V a, V b, V c, V e, float* out) {
#if HWY_TARGET == HWY_SCALAR
  (void)d;
  out[0] = hn::GetLane(a);
  out[1] = hn::GetLane(b);
  out[2] = hn::GetLane(c);
  out[3] = hn::GetLane(e);
#else
  static_assert(hn::MaxLanes(D()) >= 4, "sum_lanes4 needs whole 128-bit blocks");
  // Within each 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c and e ...
  const V ab = hn::Add(hn::InterleaveLower(d, a, b), hn::InterleaveUpper(d, a, b));
  const V ce = hn::Add(hn::InterleaveLower(d, c, e), hn::InterleaveUpper(d, c, e));
  // ... then pairs of lanes interleaved: [a, b, c, e] per block.
  const hn::Repartition<uint64_t, D> d64;
  const auto ab64 = hn::BitCast(d64, ab), ce64 = hn::BitCast(d64, ce);
  const V sums = hn::Add(hn::BitCast(d, hn::InterleaveLower(d64, ab64, ce64)),
                         hn::BitCast(d, hn::InterleaveUpper(d64, ab64, ce64)));
  store_block_sum(d, sums, out);
#endif
}

}  // namespace HWY_NAMESPACE
}  // namespace lsa_decode
HWY_AFTER_NAMESPACE();

#endif  // LSA_DECODE_OPS_REDUCE_INL_H_
