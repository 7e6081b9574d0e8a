// Counter-based random numbers for dropout, shared by the CPU and CUDA kernels.
//
// Every dropout site gets a 64-bit key = mix64(seed ^ mix64(ctr)), where ctr
// encodes (training step, site).  Element `idx` of that site is kept iff
// rand32(key, idx) >= thresh, thresh = round(p * 2^32).  Nothing is stored:
// the backward pass recomputes the same mask from (key, idx), so the mask is
// deterministic per seed and free to evaluate in parallel in any order.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define GNB_HD __host__ __device__ __forceinline__
#else
#define GNB_HD inline
#endif

namespace gnb {

// splitmix64 finaliser (Steele, Lea, Flood 2014)
GNB_HD uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

GNB_HD uint64_t make_key(uint64_t seed, uint64_t ctr) { return mix64(seed ^ mix64(ctr)); }

// "lowbias32" integer hash (C. Wellons' hash-prospector): a bijection on 32 bits
// with a very low avalanche bias; two rounds keyed by the two halves of the key.
GNB_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

GNB_HD uint32_t rand32(uint64_t key, uint64_t idx) {
  uint32_t x = mix32(static_cast<uint32_t>(idx) ^ static_cast<uint32_t>(key));
  return mix32(x ^ static_cast<uint32_t>(key >> 32) ^ (static_cast<uint32_t>(idx >> 32) * 0x9E3779B9U));
}

// Dropout parameters of one site.  p <= 0: keep all (scale 1); p >= 1: drop all.
// ``bits``: only in the verify build (GNB_MASKED, see draw): the site's draws given by the
// harness instead of hashed (0xFFFFFFFF kept, 0 dropped); always null in the timed build.
struct Drop {
  uint64_t key;
  uint32_t thresh;
  double scale;
  bool active;   // p > 0
  bool all;      // p >= 1 (everything dropped)
  const uint32_t* bits;
};

inline Drop make_drop(double p, int64_t seed, int64_t ctr) {
  Drop d;
  d.key = make_key(static_cast<uint64_t>(seed), static_cast<uint64_t>(ctr));
  d.active = p > 0.0;
  d.all = p >= 1.0;
  double t = p * 4294967296.0;
  if (t < 0) t = 0;
  if (t > 4294967295.0) t = 4294967295.0;
  d.thresh = d.active ? static_cast<uint32_t>(t + 0.5 > 4294967295.0 ? 4294967295.0 : t + 0.5) : 0u;
  d.scale = d.all ? 0.0 : 1.0 / (1.0 - (p > 0 ? p : 0.0));
  d.bits = nullptr;
  return d;
}

// The draw of element ``idx`` of a site (``key`` = d.key, often held in a local): the hash in the
// timed build, which compiles to exactly rand32(key, idx).  The verify build (the same sources
// compiled separately with -DGNB_MASKED, never timed) reads the harness's mask instead, so the
// very kernels that are timed run with injected masks: same place, same scale, same backward.
#if defined(GNB_MASKED)
#define GNB_DRAW(d, key, idx) ((d).bits ? (d).bits[(idx)] : rand32((key), (idx)))
#else
#define GNB_DRAW(d, key, idx) rand32((key), (idx))
#endif

GNB_HD bool kept(const Drop& d, uint64_t idx) {
  return !d.active || (!d.all && GNB_DRAW(d, d.key, idx) >= d.thresh);
}

// activation codes shared with Python
enum Act : int { ACT_NONE = 0, ACT_RELU = 1, ACT_ELU = 2 };

}  // namespace gnb
