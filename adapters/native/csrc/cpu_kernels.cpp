// CPU kernels of the native adapter (C++17 + OpenMP, float and double).
// No torch headers here: see kernels.h for the interface and conventions.
// OpenMP is the libgomp torch already loads, so torch.set_num_threads governs
// these loops too.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"

namespace gnb {
namespace cpu {
namespace {

// Run in parallel only when there is enough work (~ multiply-adds) to pay the
// fork/join, several tens of microseconds: small graphs run on one thread, which
// also spares them barrier waits when other processes hold the other cores.
constexpr int64_t kParWork = 1 << 18;

// y += v * x over F elements; fixed widths unrolled by the compiler.
template <typename T, int W>
inline void axpy_fixed(T* __restrict y, T v, const T* __restrict x) {
  for (int f = 0; f < W; ++f) y[f] += v * x[f];
}

template <typename T>
inline void axpy(T* __restrict y, T v, const T* __restrict x, int64_t F) {
  switch (F) {
    case 8: axpy_fixed<T, 8>(y, v, x); return;
    case 16: axpy_fixed<T, 16>(y, v, x); return;
    case 32: axpy_fixed<T, 32>(y, v, x); return;
    case 64: axpy_fixed<T, 64>(y, v, x); return;
    default:
      for (int64_t f = 0; f < F; ++f) y[f] += v * x[f];
  }
}

// exp for float: Cephes' expf polynomial (about 1 ulp on its range), written so
// that loops over it vectorise; double (gradcheck only) uses std::exp.
inline float vexp(float x) {
  x = x < 88.3762626647949f ? x : 88.3762626647949f;
  x = x > -87.3365447505531f ? x : -87.3365447505531f;
  // round to nearest by the 1.5*2^23 trick (no libm call, so the loop vectorises)
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float q = 1.9875691500E-4f;
  q = q * r + 1.3981999507E-3f;
  q = q * r + 8.3334519073E-3f;
  q = q * r + 4.1665795894E-2f;
  q = q * r + 1.6666665459E-1f;
  q = q * r + 5.0000001201E-1f;
  const float y = q * r * r + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, sizeof scale);
  return y * scale;
}
inline double vexp(double x) { return std::exp(x); }
inline float vexpm1(float x) { return vexp(x) - 1.0f; }     // used for x <= 0 (ELU): abs error ~6e-8
inline double vexpm1(double x) { return std::expm1(x); }

// v if k, else +0.0, as a bit mask: GCC does not if-convert "k ? v : 0" in a loop that also
// hashes (it reports control flow and stays scalar, 7x slower on the dense input dropout);
// an AND with a 0/~0 mask vectorises.
template <typename T> struct Bits;
template <> struct Bits<float> { typedef uint32_t U; };
template <> struct Bits<double> { typedef uint64_t U; };
template <typename T>
inline T keep_or_zero(T v, bool k) {
  typename Bits<T>::U b;
  std::memcpy(&b, &v, sizeof b);
  b &= -static_cast<typename Bits<T>::U>(k);
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// dst[f] = s * src[f] where element base + f of site d is kept, else 0 (d active, not all;
// src may be dst).  Within a row that does not cross a 2^32 boundary of the element index the
// high word of rand32's input is constant, so the hash runs on 32-bit lanes (8 per AVX2 vector
// instead of 4): the same draws as rand32(d.key, base + f), bit for bit.
template <typename T>
inline void drop_row(const T* src, T* dst, int64_t F, T s, const Drop& d, uint64_t base) {
  const uint32_t th = d.thresh;
#if defined(GNB_MASKED)
  if (d.bits) {
    for (int64_t f = 0; f < F; ++f) dst[f] = keep_or_zero(src[f] * s, d.bits[base + f] >= th);
    return;
  }
#endif
  const uint32_t lo = static_cast<uint32_t>(base);
  if (static_cast<uint64_t>(lo) + static_cast<uint64_t>(F) <= 0x100000000ULL) {
    const uint32_t k0 = static_cast<uint32_t>(d.key);
    const uint32_t k1 = static_cast<uint32_t>(d.key >> 32) ^ (static_cast<uint32_t>(base >> 32) * 0x9E3779B9U);
    for (int64_t f = 0; f < F; ++f)
      dst[f] = keep_or_zero(src[f] * s, mix32(mix32((lo + static_cast<uint32_t>(f)) ^ k0) ^ k1) >= th);
  } else {
    for (int64_t f = 0; f < F; ++f) dst[f] = keep_or_zero(src[f] * s, rand32(d.key, base + f) >= th);
  }
}

template <typename T>
inline void epilogue_row(T* __restrict y, int64_t F, int act, const Drop& d, uint64_t base) {
  if (act == ACT_RELU) {
    for (int64_t f = 0; f < F; ++f) y[f] = y[f] > T(0) ? y[f] : T(0);
  } else if (act == ACT_ELU) {
    for (int64_t f = 0; f < F; ++f) {
      const T e = vexpm1(y[f] < T(0) ? y[f] : T(0));
      y[f] = y[f] > T(0) ? y[f] : e;
    }
  }
  if (!d.active) return;
  if (d.all) {
    for (int64_t f = 0; f < F; ++f) y[f] = T(0);
    return;
  }
  drop_row(y, y, F, static_cast<T>(d.scale), d, base);
}

// Prefetch a feature row (bytes) that a later iteration will read at random.
constexpr int64_t kPrefetchDist = 8;
template <typename T>
inline void prefetch_row(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64) __builtin_prefetch(c + b);
}

// y[f0 .. f0+W) += sum over q < m of s * val[k] * B[col[k], f0 .. f0+W), k = kf(q),
// accumulated in vector registers (explicit 64-byte vectors: left to itself GCC
// vectorises across edges with gathers instead) and written once.
// nnz > 0: prefetch the rows kPrefetchDist edges ahead (frow elements each).
template <typename T, int W, typename KF>
inline void block_accum(KF kf, int64_t m, const int32_t* __restrict col, const T* __restrict val, T s,
                        const T* __restrict B, int64_t ldb, int64_t f0, T* __restrict y, int64_t nnz,
                        int64_t frow) {
  typedef T V __attribute__((vector_size(64)));
  constexpr int L = 64 / sizeof(T);
  constexpr int NV = W / L;
  static_assert(NV * L == W, "block width must be a multiple of the vector width");
  V acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = V{};
  for (int64_t q = 0; q < m; ++q) {
    const int64_t k = kf(q);
    if (nnz && k + kPrefetchDist < nnz) prefetch_row(B + static_cast<int64_t>(col[k + kPrefetchDist]) * ldb, frow);
    const T c = (val ? val[k] : T(1)) * s;
    const T* __restrict b = B + static_cast<int64_t>(col[k]) * ldb + f0;
    for (int v = 0; v < NV; ++v) {
      V x;
      std::memcpy(&x, b + v * L, sizeof x);
      acc[v] += c * x;
    }
  }
  for (int v = 0; v < NV; ++v) {
    V x;
    std::memcpy(&x, y + f0 + v * L, sizeof x);
    x += acc[v];
    std::memcpy(y + f0 + v * L, &x, sizeof x);
  }
}

// narrow tail (W < 16 features): scalar accumulators in registers.  The empty asm
// keeps GCC from vectorising the edge loop (with gathers) instead of the features.
template <typename T, int W, typename KF>
inline void tail_accum(KF kf, int64_t m, const int32_t* __restrict col, const T* __restrict val, T s,
                       const T* __restrict B, int64_t ldb, int64_t f0, T* __restrict y, int64_t nnz,
                       int64_t frow) {
  T acc[W];
  for (int f = 0; f < W; ++f) acc[f] = T(0);
  for (int64_t q = 0; q < m; ++q) {
    const int64_t k = kf(q);
    if (nnz && k + kPrefetchDist < nnz) prefetch_row(B + static_cast<int64_t>(col[k + kPrefetchDist]) * ldb, frow);
    const T c = (val ? val[k] : T(1)) * s;
    const T* __restrict b = B + static_cast<int64_t>(col[k]) * ldb + f0;
    for (int f = 0; f < W; ++f) acc[f] += c * b[f];
    asm volatile("");
  }
  for (int f = 0; f < W; ++f) y[f0 + f] += acc[f];
}

// the same over all F features: blocks of 64 / 32 / 16, then the narrow tail
template <typename T, typename KF>
inline void rows_accum(KF kf, int64_t m, const int32_t* col, const T* val, T s, const T* B, int64_t ldb,
                       int64_t F, T* y, int64_t nnz) {
  int64_t f0 = 0;
  for (; f0 + 64 <= F; f0 += 64) block_accum<T, 64>(kf, m, col, val, s, B, ldb, f0, y, f0 ? 0 : nnz, F);
  if (f0 + 32 <= F) {
    block_accum<T, 32>(kf, m, col, val, s, B, ldb, f0, y, f0 ? 0 : nnz, F);
    f0 += 32;
  }
  if (f0 + 16 <= F) {
    block_accum<T, 16>(kf, m, col, val, s, B, ldb, f0, y, f0 ? 0 : nnz, F);
    f0 += 16;
  }
  const int64_t pf = f0 ? 0 : nnz;
  switch (F - f0) {
#define GNB_TAIL(W) \
  case W: tail_accum<T, W>(kf, m, col, val, s, B, ldb, f0, y, pf, F); break;
    GNB_TAIL(1) GNB_TAIL(2) GNB_TAIL(3) GNB_TAIL(4) GNB_TAIL(5) GNB_TAIL(6) GNB_TAIL(7) GNB_TAIL(8)
    GNB_TAIL(9) GNB_TAIL(10) GNB_TAIL(11) GNB_TAIL(12) GNB_TAIL(13) GNB_TAIL(14) GNB_TAIL(15)
#undef GNB_TAIL
    default: break;
  }
}

}  // namespace

int max_threads() { return omp_get_max_threads(); }

// ---------------------------------------------------------------------------
template <typename T>
void spmm(const SpmmArgs<T>& a) {
  const int64_t* __restrict rp = a.rowptr;
  const int32_t* __restrict col = a.col;
  const T* __restrict val = a.val;
  const int64_t N = a.N, F = a.F, nnz = rp[N];
  const int64_t work = (nnz + N) * F;
#pragma omp parallel for schedule(dynamic, 64) if (work > kParWork)
  for (int64_t i = 0; i < N; ++i) {
    T* __restrict y = a.Y + i * a.ldy;
    if (a.bias) {
      for (int64_t f = 0; f < F; ++f) y[f] = a.bias[f];
    } else {
      for (int64_t f = 0; f < F; ++f) y[f] = T(0);
    }
    if (a.R) {
      const T* __restrict r = a.R + i * a.ldr;
      for (int64_t f = 0; f < F; ++f) y[f] += r[f];
    }
    const int64_t beg = rp[i];
    rows_accum([beg](int64_t q) { return beg + q; }, rp[i + 1] - beg, col, val, T(1), a.X, a.ldx, F, y, nnz);
    epilogue_row(y, F, a.act, a.drop, static_cast<uint64_t>(i) * F);
  }
}

// ---------------------------------------------------------------------------
// Skinny dense products.  X rows are KV vectors of 64 bytes; W's M columns are
// kept transposed in registers/L1; each output is a dot product (fwd) or an
// outer-product accumulation over rows (tgrad).
namespace {
constexpr int kMaxM = 16;

// y[0..M) = sum_k x[k] * W[k, 0..M): W's rows padded to one 64-byte vector (M <= lanes),
// a broadcast multiply-add per k, no horizontal sums
template <typename T>
void skinny_mm_impl(const T* X, int64_t ldx, const T* W, T* Y, int64_t N, int64_t K, int64_t M) {
  typedef T V __attribute__((vector_size(64)));
  std::vector<T> wp(static_cast<size_t>(K) * (64 / sizeof(T)), T(0));
  constexpr int L = 64 / sizeof(T);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t m = 0; m < M; ++m) wp[k * L + m] = W[k * M + m];
  const T* wpp = wp.data();
  constexpr int R = 4;                  // rows per step: independent chains, one W load per k for all
  const int64_t nb = (N + R - 1) / R;
#pragma omp parallel for schedule(static) if (N * K * M > kParWork)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t i0 = b * R, r = N - i0 < R ? N - i0 : R;
    V y[R];
    for (int q = 0; q < R; ++q) y[q] = V{};
    if (r == R) {
      for (int64_t k = 0; k < K; ++k) {
        V w;
        std::memcpy(&w, wpp + k * L, sizeof(V));
        for (int q = 0; q < R; ++q) y[q] += X[(i0 + q) * ldx + k] * w;
      }
    } else {
      for (int64_t k = 0; k < K; ++k) {
        V w;
        std::memcpy(&w, wpp + k * L, sizeof(V));
        for (int64_t q = 0; q < r; ++q) y[q] += X[(i0 + q) * ldx + k] * w;
      }
    }
    for (int64_t q = 0; q < r; ++q) {
      T* __restrict out = Y + (i0 + q) * M;
      for (int64_t m = 0; m < M; ++m) out[m] = y[q][m];
    }
  }
}

template <typename T, int KV>
void skinny_tgrad_impl(const T* X, int64_t ldx, const T* G, T* O, int64_t N, int64_t K, int64_t M) {
  typedef T V __attribute__((vector_size(64)));
  constexpr int L = 64 / sizeof(T);
  const bool par = N * K * M > kParWork;
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<T> part(static_cast<size_t>(nt) * kMaxM * KV * L);   // (std::vector<V> would drop the vector attribute)
#pragma omp parallel num_threads(nt) if (par)
  {
    V acc[kMaxM][KV];
    for (int m = 0; m < kMaxM; ++m)
      for (int v = 0; v < KV; ++v) acc[m][v] = V{};
#pragma omp for schedule(static)
    for (int64_t i = 0; i < N; ++i) {
      V x[KV];
      for (int v = 0; v < KV; ++v) std::memcpy(&x[v], X + i * ldx + v * L, sizeof(V));
      const T* __restrict g = G + i * M;
      for (int64_t m = 0; m < M; ++m)
        for (int v = 0; v < KV; ++v) acc[m][v] += g[m] * x[v];
    }
    T* mine = part.data() + static_cast<size_t>(omp_get_thread_num()) * kMaxM * KV * L;
    for (int m = 0; m < kMaxM; ++m)
      for (int v = 0; v < KV; ++v) std::memcpy(mine + (m * KV + v) * L, &acc[m][v], sizeof(V));
  }
  for (int64_t m = 0; m < M; ++m)
    for (int v = 0; v < KV; ++v) {
      V t, u;
      std::memcpy(&t, part.data() + (m * KV + v) * L, sizeof(V));
      for (int th = 1; th < nt; ++th) {
        std::memcpy(&u, part.data() + ((static_cast<size_t>(th) * kMaxM + m) * KV + v) * L, sizeof(V));
        t += u;
      }
      for (int l = 0; l < L; ++l) O[(v * L + l) * M + m] = t[l];
    }
}
}  // namespace

template <typename T>
bool skinny_mm(const T* X, int64_t ldx, const T* W, T* Y, int64_t N, int64_t K, int64_t M) {
  constexpr int L = 64 / sizeof(T);
  if (M < 1 || M > L || K < 1 || K > 1024) return false;
  skinny_mm_impl<T>(X, ldx, W, Y, N, K, M);
  return true;
}

template <typename T>
bool skinny_tgrad(const T* X, int64_t ldx, const T* G, T* O, int64_t N, int64_t K, int64_t M) {
  constexpr int L = 64 / sizeof(T);
  if (M < 1 || M > kMaxM || K % L != 0) return false;
  switch (K / L) {
    case 1: skinny_tgrad_impl<T, 1>(X, ldx, G, O, N, K, M); return true;
    case 2: skinny_tgrad_impl<T, 2>(X, ldx, G, O, N, K, M); return true;
    case 4: skinny_tgrad_impl<T, 4>(X, ldx, G, O, N, K, M); return true;
    default: return false;
  }
}

// ---------------------------------------------------------------------------
template <typename T>
void sddmm(const int64_t* rowptr, const int32_t* col, const T* U, int64_t ldu, const T* V, int64_t ldv, T* out,
           int64_t N, int64_t F) {
  const int64_t* __restrict rp = rowptr;
  const int64_t nnz = rp[N];
#pragma omp parallel for schedule(dynamic, 64) if ((nnz + N) * F > kParWork)
  for (int64_t i = 0; i < N; ++i) {
    const T* __restrict v = V + i * ldv;
    const int64_t end = rp[i + 1];
    for (int64_t k = rp[i]; k < end; ++k) {
      if (k + kPrefetchDist < nnz) prefetch_row(U + static_cast<int64_t>(col[k + kPrefetchDist]) * ldu, F);
      const T* __restrict u = U + static_cast<int64_t>(col[k]) * ldu;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t f = 0; f < F; ++f) acc += u[f] * v[f];
      out[k] = acc;
    }
  }
}

template <typename T>
void epilogue(const T* X, int64_t ldx, const T* bias, T* Y, int64_t N, int64_t F, int act, Drop d) {
#pragma omp parallel for schedule(static) if (N * F > kParWork)
  for (int64_t i = 0; i < N; ++i) {
    const T* __restrict x = X + i * ldx;
    T* __restrict y = Y + i * F;
    if (!bias && act == ACT_NONE && d.active && !d.all) {   // plain dropout (input features): one pass
      drop_row(x, y, F, static_cast<T>(d.scale), d, static_cast<uint64_t>(i) * F);
      continue;
    }
    if (bias) {
      for (int64_t f = 0; f < F; ++f) y[f] = x[f] + bias[f];
    } else {
      for (int64_t f = 0; f < F; ++f) y[f] = x[f];
    }
    epilogue_row(y, F, act, d, static_cast<uint64_t>(i) * F);
  }
}

template <typename T>
void head_mean(const T* X, const T* bias, T* Y, int64_t N, int64_t H, int64_t F) {
  const T inv = T(1) / static_cast<T>(H);
#pragma omp parallel for schedule(static) if (N * H * F > kParWork)
  for (int64_t i = 0; i < N; ++i) {
    const T* __restrict x = X + i * H * F;
    T* __restrict y = Y + i * F;
    for (int64_t f = 0; f < F; ++f) y[f] = x[f];
    for (int64_t h = 1; h < H; ++h)
      for (int64_t f = 0; f < F; ++f) y[f] += x[h * F + f];
    for (int64_t f = 0; f < F; ++f) y[f] = y[f] * inv + (bias ? bias[f] : T(0));
  }
}

// kept: relu: Y>0 ? g*s : 0;  elu: Y>0 ? g*s : g*(Y + s)  (Y = s*elu(z), elu' = elu + 1);  none: g*s
template <typename T>
void epilogue_bwd(const T* Y, const T* G, T* O, int64_t N, int64_t F, int act, Drop d) {
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
#pragma omp parallel for schedule(static) if (N * F > kParWork)
  for (int64_t i = 0; i < N; ++i) {
    const T* __restrict y = Y + i * F;
    const T* __restrict g = G + i * F;
    T* __restrict o = O + i * F;
    if (act == ACT_RELU) {
      for (int64_t f = 0; f < F; ++f) o[f] = y[f] > T(0) ? g[f] * s : T(0);
    } else if (act == ACT_ELU) {
      for (int64_t f = 0; f < F; ++f) o[f] = y[f] > T(0) ? g[f] * s : g[f] * (y[f] + s);
    } else {
      for (int64_t f = 0; f < F; ++f) o[f] = g[f] * s;
    }
    if (d.active) {
      if (d.all) {
        for (int64_t f = 0; f < F; ++f) o[f] = T(0);
      } else {
        drop_row(o, o, F, T(1), d, static_cast<uint64_t>(i) * F);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Positions in [beg, beg+n) (n <= kChunk) that dropout keeps, compacted into kb
// without branches (the hash loop vectorises); returns how many.
constexpr int64_t kChunk = 256;
inline int64_t kept_chunk(const Drop& d, int64_t beg, int64_t n, int32_t* __restrict kb) {
  uint32_t u[kChunk];
  const uint64_t key = d.key;
  for (int64_t c = 0; c < n; ++c) u[c] = GNB_DRAW(d, key, static_cast<uint64_t>(beg + c));
  int64_t m = 0;
  for (int64_t c = 0; c < n; ++c) {
    kb[m] = static_cast<int32_t>(c);
    m += u[c] >= d.thresh;
  }
  return m;
}

// y += sum over row's kept non-zeros of s*val[k] * B[col[k]]  (B rows of length Fo)
template <typename T>
inline void sparse_row_axpy(const Drop& d, int64_t beg, int64_t end, const int32_t* __restrict col,
                            const T* __restrict val, T s, const T* __restrict B, int64_t ldb, T* __restrict y,
                            int64_t Fo) {
  if (!d.active) {
    rows_accum([beg](int64_t q) { return beg + q; }, end - beg, col, val, T(1), B, ldb, Fo, y, 0);
    return;
  }
  if (d.all) return;
  int32_t kb[kChunk];
  for (int64_t c0 = beg; c0 < end; c0 += kChunk) {
    const int64_t n = end - c0 < kChunk ? end - c0 : kChunk;
    const int64_t m = kept_chunk(d, c0, n, kb);
    rows_accum([c0, &kb](int64_t q) { return c0 + kb[q]; }, m, col, val, s, B, ldb, Fo, y, 0);
  }
}

// acc[col[k]] += s*val[k] * g for the row's kept non-zeros (the transposed product)
template <typename T>
inline void sparse_row_scatter(const Drop& d, int64_t beg, int64_t end, const int32_t* __restrict col,
                               const T* __restrict val, T s, const T* __restrict g, T* __restrict acc,
                               int64_t Fo) {
  if (!d.active) {
    for (int64_t k = beg; k < end; ++k) axpy(acc + static_cast<int64_t>(col[k]) * Fo, val[k], g, Fo);
    return;
  }
  if (d.all) return;
  int32_t kb[kChunk];
  for (int64_t c0 = beg; c0 < end; c0 += kChunk) {
    const int64_t n = end - c0 < kChunk ? end - c0 : kChunk;
    const int64_t m = kept_chunk(d, c0, n, kb);
    for (int64_t q = 0; q < m; ++q) {
      const int64_t k = c0 + kb[q];
      axpy(acc + static_cast<int64_t>(col[k]) * Fo, val[k] * s, g, Fo);
    }
  }
}

template <typename T>
void csr_mm(const int64_t* rowptr, const int32_t* col, const T* val, const T* W, int64_t ldw, T* Y, int64_t N,
            int64_t Fo, Drop d) {
  const int64_t* __restrict rp = rowptr;
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
  const int64_t work = rp[N] * Fo;
#pragma omp parallel for schedule(dynamic, 64) if (work > kParWork)
  for (int64_t i = 0; i < N; ++i) {
    T* __restrict y = Y + i * Fo;
    for (int64_t f = 0; f < Fo; ++f) y[f] = T(0);
    sparse_row_axpy(d, rp[i], rp[i + 1], col, val, s, W, ldw, y, Fo);
  }
}

// Through X's CSC: one output row per feature, accumulated in registers over
// the kept non-zeros of the column (gathering rows of G), no reduction needed.
template <typename T>
void csr_mm_tgrad(const int64_t* cptr, const int32_t* crow, const int32_t* cperm, const T* cval, const T* G,
                  int64_t ldg, T* O, int64_t Fin, int64_t Fo, Drop d) {
  const int64_t* __restrict cp = cptr;
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
  const int64_t nnz = cp[Fin], work = nnz * Fo;
#pragma omp parallel for schedule(dynamic, 16) if (work > kParWork)
  for (int64_t c = 0; c < Fin; ++c) {
    T* __restrict o = O + c * Fo;
    for (int64_t f = 0; f < Fo; ++f) o[f] = T(0);
    if (d.all) continue;
    const int64_t beg = cp[c], end = cp[c + 1];
    if (!d.active) {
      rows_accum([beg](int64_t q) { return beg + q; }, end - beg, crow, cval, T(1), G, ldg, Fo, o, nnz);
      continue;
    }
    int32_t kb[kChunk];
    uint32_t u[kChunk];
    for (int64_t c0 = beg; c0 < end; c0 += kChunk) {
      const int64_t n = end - c0 < kChunk ? end - c0 : kChunk;
      for (int64_t q = 0; q < n; ++q) u[q] = GNB_DRAW(d, d.key, static_cast<uint64_t>(cperm[c0 + q]));
      int64_t m = 0;
      for (int64_t q = 0; q < n; ++q) {
        kb[m] = static_cast<int32_t>(q);
        m += u[q] >= d.thresh;
      }
      rows_accum([c0, &kb](int64_t q) { return c0 + kb[q]; }, m, crow, cval, s, G, ldg, Fo, o, nnz);
    }
  }
}

// Through X's CSR: G is read in order, each thread scatters into its own
// [Fin, Fo] accumulator (thread 0 into O), then the accumulators are summed.
template <typename T>
void csr_mm_tgrad_rows(const int64_t* rowptr, const int32_t* col, const T* val, const T* G, int64_t ldg, T* O,
                       int64_t N, int64_t Fin, int64_t Fo, Drop d) {
  const int64_t* __restrict rp = rowptr;
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
  const int64_t FF = Fin * Fo;
  const bool par = rp[N] * Fo > kParWork;
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<T> extra(static_cast<size_t>(nt - 1) * FF);
#pragma omp parallel num_threads(nt) if (par)
  {
    const int tid = omp_get_thread_num();
    T* __restrict acc = tid == 0 ? O : extra.data() + static_cast<size_t>(tid - 1) * FF;
    for (int64_t q = 0; q < FF; ++q) acc[q] = T(0);
#pragma omp for schedule(static)     // static: the same rows per thread every call, so sums are reproducible
    for (int64_t i = 0; i < N; ++i) sparse_row_scatter(d, rp[i], rp[i + 1], col, val, s, G + i * ldg, acc, Fo);
    // (implicit barrier)
    if (nt > 1) {
#pragma omp for schedule(static)
      for (int64_t q = 0; q < FF; ++q) {
        T v = O[q];
        for (int t = 1; t < nt; ++t) v += extra[static_cast<size_t>(t - 1) * FF + q];
        O[q] = v;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// GAT.  Per-edge arrays are [E, H] (heads contiguous), so the loops over heads
// vectorise; per-thread scratch holds one row's running max / sums per head.
template <typename T, int HC, int FC>
void gat_fwd_impl(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst,
                  T* out, T* alpha, T* a_s, T* a_d, int64_t N, int64_t H_, int64_t F_, T slope, Drop d) {
  const int64_t H = HC ? HC : H_, F = FC ? FC : F_;   // compile-time sizes for the common shapes
  const int64_t* __restrict rp = rowptr;
  const int64_t HF = H * F;
  const bool skip_zero = F >= 32;                      // skip dropped heads only when that saves real work
  const bool par = (rp[N] + N) * HF > kParWork;
  const T sc = static_cast<T>(d.active ? d.scale : 1.0);
  const uint64_t key = d.key;
  const uint32_t th = d.thresh;
#pragma omp parallel if (par)
  {
    // per-head scratch: local arrays when H is known at compile time (no aliasing
    // doubts, so the head loops vectorise), else heap
    T mb[HC ? HC : 1], sb[HC ? HC : 1], kb[HC ? HC : 1];
    std::vector<T> scratch(HC ? 0 : 3 * H);
    T* __restrict m = HC ? mb : scratch.data();
    T* __restrict sum = HC ? sb : scratch.data() + H;
    T* __restrict ak = HC ? kb : scratch.data() + 2 * H;
#pragma omp for schedule(static)
    for (int64_t j = 0; j < N; ++j) {
      const T* __restrict hw = Hw + j * HF;
      for (int64_t h = 0; h < H; ++h) {
        const T* __restrict x = hw + h * F;
        const T* __restrict ws = att_src + h * F;
        const T* __restrict wd = att_dst + h * F;
        T s = 0, t = 0;
#pragma omp simd reduction(+ : s, t)
        for (int64_t f = 0; f < F; ++f) {
          s += x[f] * ws[f];
          t += x[f] * wd[f];
        }
        a_s[j * H + h] = s;
        a_d[j * H + h] = t;
      }
    }
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      T* __restrict y = out + i * HF;
      for (int64_t q = 0; q < HF; ++q) y[q] = T(0);
      const int64_t beg = rp[i], end = rp[i + 1];
      if (beg == end) continue;
      const T* __restrict adi = a_d + i * H;
      for (int64_t h = 0; h < H; ++h) {
        m[h] = -std::numeric_limits<T>::infinity();
        sum[h] = T(0);
      }
      for (int64_t k = beg; k < end; ++k) {
        const T* __restrict asj = a_s + static_cast<int64_t>(col[k]) * H;
        T* __restrict al = alpha + k * H;
        for (int64_t h = 0; h < H; ++h) {
          T s = asj[h] + adi[h];
          s = s > T(0) ? s : slope * s;
          al[h] = s;
          m[h] = s > m[h] ? s : m[h];
        }
      }
      for (int64_t k = beg; k < end; ++k) {
        T* __restrict al = alpha + k * H;
        for (int64_t h = 0; h < H; ++h) {
          const T e = vexp(al[h] - m[h]);
          al[h] = e;
          sum[h] += e;
        }
      }
      for (int64_t h = 0; h < H; ++h) sum[h] = T(1) / sum[h];
      for (int64_t k = beg; k < end; ++k) {
        T* __restrict al = alpha + k * H;
        for (int64_t h = 0; h < H; ++h) al[h] *= sum[h];
        if (d.active) {
          const uint64_t base = static_cast<uint64_t>(k * H);
          for (int64_t h = 0; h < H; ++h) ak[h] = (!d.all && GNB_DRAW(d, key, base + h) >= th) ? al[h] * sc : T(0);
        } else {
          for (int64_t h = 0; h < H; ++h) ak[h] = al[h];
        }
        const T* __restrict hw = Hw + static_cast<int64_t>(col[k]) * HF;
        for (int64_t h = 0; h < H; ++h) {
          if (skip_zero && ak[h] == T(0)) continue;
          const T a = ak[h];
          for (int64_t f = 0; f < F; ++f) y[h * F + f] += a * hw[h * F + f];
        }
      }
    }
  }
}

// Two passes:
//  A (by destination i): d alpha_d = <g_i, Hw_j>, back through dropout and the softmax
//    (d e = alpha (d alpha - sum_k alpha_k d alpha_k)) and LeakyReLU -> ds [E,H];
//    d a_dst[i] = sum of ds over i's edges.
//  B (by source j, transposed CSR): dHw_j = sum alpha_d g_i + da_src_j att_src + da_dst_j att_dst,
//    da_src_j = sum of ds over j's out-edges; d att_* reduced in per-thread buffers (fixed order).
template <typename T, int HC, int FC>
void gat_bwd_impl(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
                  const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s,
                  const T* a_d, const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src,
                  T* datt_dst, int64_t N, int64_t H_, int64_t F_, T slope, Drop d) {
  const int64_t H = HC ? HC : H_, F = FC ? FC : F_;
  const bool skip_zero = F >= 32;
  const int64_t* __restrict rp = rowptr;
  const int64_t* __restrict trp = trowptr;
  const int64_t HF = H * F;
  const bool par = (rp[N] + N) * HF > kParWork;
  const T sc = static_cast<T>(d.active ? d.scale : 1.0);
  const uint64_t key = d.key;
  const uint32_t th = d.thresh;
  const int64_t EH = rp[N] * H;
  T* __restrict ds = scratch_e;              // d score, by destination (pass A's own)
  T* __restrict ds_t = scratch_e + EH;       // d score, transposed order (pass B reads it in order)
  T* __restrict ad_t = scratch_e + 2 * EH;   // alpha after dropout, transposed order
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<T> acc_s(static_cast<size_t>(nt) * HF, T(0)), acc_d(static_cast<size_t>(nt) * HF, T(0));
#pragma omp parallel num_threads(nt) if (par)
  {
    T sb[HC ? HC : 1], cb[HC ? HC : 1], kb[HC ? HC : 1];
    std::vector<T> scratch(HC ? 0 : 3 * H);
    T* __restrict S = HC ? sb : scratch.data();
    T* __restrict Acc = HC ? cb : scratch.data() + H;
    T* __restrict ak = HC ? kb : scratch.data() + 2 * H;
    const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t beg = rp[i], end = rp[i + 1];
      const T* __restrict g = G + i * HF;
      const T* __restrict adi = a_d + i * H;
      for (int64_t h = 0; h < H; ++h) S[h] = Acc[h] = T(0);
      for (int64_t k = beg; k < end; ++k) {
        const T* __restrict hw = Hw + static_cast<int64_t>(col[k]) * HF;
        const T* __restrict al = alpha + k * H;
        T* __restrict dk = ds + k * H;
        for (int64_t h = 0; h < H; ++h) {
          const T* __restrict x = hw + h * F;
          const T* __restrict gh = g + h * F;
          T dot = 0;
#pragma omp simd reduction(+ : dot)
          for (int64_t f = 0; f < F; ++f) dot += gh[f] * x[f];
          dk[h] = dot;
        }
        T* __restrict at = ad_t + static_cast<int64_t>(tpos[k]) * H;
        if (d.active) {
          const uint64_t base = static_cast<uint64_t>(k * H);
          for (int64_t h = 0; h < H; ++h) {
            const bool keep = !d.all && GNB_DRAW(d, key, base + h) >= th;
            dk[h] = keep ? dk[h] * sc : T(0);
            at[h] = keep ? al[h] * sc : T(0);
          }
        } else {
          for (int64_t h = 0; h < H; ++h) at[h] = al[h];
        }
        for (int64_t h = 0; h < H; ++h) S[h] += al[h] * dk[h];
      }
      for (int64_t k = beg; k < end; ++k) {
        const T* __restrict asj = a_s + static_cast<int64_t>(col[k]) * H;
        const T* __restrict al = alpha + k * H;
        const T* __restrict dk = ds + k * H;
        T* __restrict dt = ds_t + static_cast<int64_t>(tpos[k]) * H;
        for (int64_t h = 0; h < H; ++h) {
          const T de = al[h] * (dk[h] - S[h]);
          const T v = asj[h] + adi[h] > T(0) ? de : slope * de;
          dt[h] = v;
          Acc[h] += v;
        }
      }
      for (int64_t h = 0; h < H; ++h) da_d[i * H + h] = Acc[h];
    }
    // (implicit barrier: ds and da_d are complete)
    T* __restrict ls = acc_s.data() + static_cast<size_t>(tid) * HF;
    T* __restrict ld = acc_d.data() + static_cast<size_t>(tid) * HF;
#pragma omp for schedule(static)
    for (int64_t j = 0; j < N; ++j) {
      T* __restrict dh = dHw + j * HF;
      const T* __restrict hw = Hw + j * HF;
      for (int64_t q = 0; q < HF; ++q) dh[q] = T(0);
      for (int64_t h = 0; h < H; ++h) S[h] = T(0);
      const int64_t end = trp[j + 1];
      for (int64_t t = trp[j]; t < end; ++t) {
        const T* __restrict g = G + static_cast<int64_t>(tcol[t]) * HF;
        const T* __restrict de = ds_t + t * H;
        for (int64_t h = 0; h < H; ++h) S[h] += de[h];
        for (int64_t h = 0; h < H; ++h) ak[h] = ad_t[t * H + h];
        for (int64_t h = 0; h < H; ++h) {
          if (skip_zero && ak[h] == T(0)) continue;
          const T a = ak[h];
          for (int64_t f = 0; f < F; ++f) dh[h * F + f] += a * g[h * F + f];
        }
      }
      const T* __restrict adj = da_d + j * H;
      for (int64_t h = 0; h < H; ++h) {
        const T s = S[h], t = adj[h];
        for (int64_t f = 0; f < F; ++f) {
          dh[h * F + f] += s * att_src[h * F + f] + t * att_dst[h * F + f];
          ls[h * F + f] += s * hw[h * F + f];
          ld[h * F + f] += t * hw[h * F + f];
        }
      }
    }
  }
  for (int64_t q = 0; q < HF; ++q) datt_src[q] = datt_dst[q] = T(0);
  for (int t = 0; t < nt; ++t)
    for (int64_t q = 0; q < HF; ++q) {
      datt_src[q] += acc_s[static_cast<size_t>(t) * HF + q];
      datt_dst[q] += acc_d[static_cast<size_t>(t) * HF + q];
    }
}


// ---------------------------------------------------------------------------
// Eight lanes = eight heads (GAT's usual H=8), with GCC/Clang vector
// extensions: per-edge score, softmax, dropout and bookkeeping become a few
// vector instructions, with the running max/sums in registers.
template <typename T> struct L8;
template <> struct L8<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t M __attribute__((vector_size(32)));
};
template <> struct L8<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef int64_t M __attribute__((vector_size(64)));
};
typedef uint32_t U8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef int32_t I8f __attribute__((vector_size(32)));

template <typename V> inline V vload(const void* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <typename V> inline void vstore(void* p, const V& v) { std::memcpy(p, &v, sizeof v); }

inline U8 mix32v(U8 x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// keep mask (-1 / 0 per lane) of elements base .. base+7 of a dropout site
template <typename T>
inline typename L8<T>::M keep8(const Drop& d, uint64_t base) {
  const uint32_t lo = static_cast<uint32_t>(base);
  U8 r;
#if defined(GNB_MASKED)
  if (d.bits) {
    for (int l = 0; l < 8; ++l) r[l] = d.bits[base + l];
  } else
#endif
  if (lo <= 0xFFFFFFF7u) {
    const U8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    U8 x = mix32v((lane + lo) ^ static_cast<uint32_t>(d.key));
    r = mix32v(x ^ (static_cast<uint32_t>(d.key >> 32) ^ (static_cast<uint32_t>(base >> 32) * 0x9E3779B9U)));
  } else {
    for (int l = 0; l < 8; ++l) r[l] = GNB_DRAW(d, d.key, base + l);
  }
  const I8 k = r >= d.thresh;
  return __builtin_convertvector(k, typename L8<T>::M);
}

inline L8<float>::V vexp8(L8<float>::V x) {
  typedef L8<float>::V V;
  const V zero = {};
  const V hi = zero + 88.3762626647949f, lo = zero + -87.3365447505531f;
  x = x < hi ? x : hi;
  x = x > lo ? x : lo;
  const V n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V q = zero + 1.9875691500E-4f;
  q = q * r + 1.3981999507E-3f;
  q = q * r + 8.3334519073E-3f;
  q = q * r + 4.1665795894E-2f;
  q = q * r + 1.6666665459E-1f;
  q = q * r + 5.0000001201E-1f;
  const V y = q * r * r + r + 1.0f;
  const I8f e = (__builtin_convertvector(n, I8f) + 127) << 23;
  V scale;
  std::memcpy(&scale, &e, sizeof scale);
  return y * scale;
}
inline L8<double>::V vexp8(L8<double>::V x) {
  for (int l = 0; l < 8; ++l) x[l] = std::exp(x[l]);
  return x;
}

// coefficient vector for chunk c of an 8-head row with F features per head:
// lane l of chunk c is feature q = 8c+l, of head q / F; takes that head's value of v
template <typename T, int FC>
inline typename L8<T>::V head_coef(const typename L8<T>::V& v, int c) {
  typename L8<T>::V r;
  for (int l = 0; l < 8; ++l) r[l] = v[(8 * c + l) / FC];
  return r;
}

// H = 8.  FC > 0 (compile-time F): an output row of 8*FC values is FC vectors of
// 8 lanes kept in registers across the row's edges; FC = 0: any F, through memory.
template <typename T, int FC>
void gat_fwd_h8(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst, T* out,
                T* alpha, T* a_s, T* a_d, int64_t N, int64_t F_, T slope, Drop d) {
  typedef typename L8<T>::V V;
  constexpr int64_t H = 8;
  const int64_t F = FC ? FC : F_, HF = H * F;
  const int64_t* __restrict rp = rowptr;
  const int64_t E = rp[N];
  const bool par = (rp[N] + N) * HF > kParWork;
  const V zero = {};
  const V vslope = zero + slope, sc = zero + static_cast<T>(d.active ? d.scale : 1.0);
  const V ninf = zero - std::numeric_limits<T>::infinity();
#pragma omp parallel if (par)
  {
#pragma omp for schedule(static)
    for (int64_t j = 0; j < N; ++j) {
      const T* __restrict hw = Hw + j * HF;
      T s[H], t[H];
      for (int64_t h = 0; h < H; ++h) {
        T x = 0, y = 0;
        for (int64_t f = 0; f < F; ++f) {
          x += hw[h * F + f] * att_src[h * F + f];
          y += hw[h * F + f] * att_dst[h * F + f];
        }
        s[h] = x;
        t[h] = y;
      }
      std::memcpy(a_s + j * H, s, sizeof s);
      std::memcpy(a_d + j * H, t, sizeof t);
    }
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      T* __restrict y = out + i * HF;
      const int64_t beg = rp[i], end = rp[i + 1];
      if (beg == end) {
        for (int64_t q = 0; q < HF; ++q) y[q] = T(0);
        continue;
      }
      const V adi = vload<V>(a_d + i * H);
      V m = ninf;
      for (int64_t k = beg; k < end; ++k) {
        V s = vload<V>(a_s + static_cast<int64_t>(col[k]) * H) + adi;
        s = s > zero ? s : s * vslope;
        vstore(alpha + k * H, s);
        m = s > m ? s : m;
      }
      V sum = zero;
      for (int64_t k = beg; k < end; ++k) {
        const V e = vexp8(vload<V>(alpha + k * H) - m);
        vstore(alpha + k * H, e);
        sum += e;
      }
      const V inv = (zero + T(1)) / sum;
      V D[FC ? FC : 1];
      if constexpr (FC > 0) {
        for (int c = 0; c < FC; ++c) D[c] = zero;
      } else {
        for (int64_t q = 0; q < HF; ++q) y[q] = T(0);
      }
      for (int64_t k = beg; k < end; ++k) {
        if (k + kPrefetchDist < E) prefetch_row(Hw + static_cast<int64_t>(col[k + kPrefetchDist]) * HF, HF);
        V a = vload<V>(alpha + k * H) * inv;
        vstore(alpha + k * H, a);
        if (d.active) a = keep8<T>(d, static_cast<uint64_t>(k * H)) ? a * sc : zero;
        const T* __restrict hw = Hw + static_cast<int64_t>(col[k]) * HF;
        if constexpr (FC > 0) {
          for (int c = 0; c < FC; ++c) D[c] += head_coef<T, FC>(a, c) * vload<V>(hw + 8 * c);
        } else {
          for (int64_t h = 0; h < H; ++h) {
            const T ah = a[h];
            for (int64_t f = 0; f < F; ++f) y[h * F + f] += ah * hw[h * F + f];
          }
        }
      }
      if constexpr (FC > 0)
        for (int c = 0; c < FC; ++c) vstore(y + 8 * c, D[c]);
    }
  }
}

template <typename T, int FC>
void gat_bwd_h8(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
                const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s, const T* a_d,
                const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src, T* datt_dst, int64_t N,
                int64_t F_, T slope, Drop d) {
  typedef typename L8<T>::V V;
  constexpr int64_t H = 8;
  const int64_t F = FC ? FC : F_, HF = H * F;
  const int64_t* __restrict rp = rowptr;
  const int64_t* __restrict trp = trowptr;
  const int64_t E = rp[N];
  const bool par = (rp[N] + N) * HF > kParWork;
  const V zero = {};
  const V vslope = zero + slope, sc = zero + static_cast<T>(d.active ? d.scale : 1.0);
  const int64_t EH = rp[N] * H;
  T* __restrict ds = scratch_e;              // d score, by destination (pass A's own)
  T* __restrict ds_t = scratch_e + EH;       // d score, transposed order (pass B reads it in order)
  T* __restrict ad_t = scratch_e + 2 * EH;   // alpha after dropout, transposed order
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<T> acc_s(static_cast<size_t>(nt) * HF, T(0)), acc_d(static_cast<size_t>(nt) * HF, T(0));
#pragma omp parallel num_threads(nt) if (par)
  {
    const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t beg = rp[i], end = rp[i + 1];
      const T* __restrict g = G + i * HF;
      const V adi = vload<V>(a_d + i * H);
      V S = zero, Acc = zero;
      V Gv[FC ? FC : 1];
      if constexpr (FC > 0)
        for (int c = 0; c < FC; ++c) Gv[c] = vload<V>(g + 8 * c);
      for (int64_t k = beg; k < end; ++k) {
        if (k + kPrefetchDist < E) prefetch_row(Hw + static_cast<int64_t>(col[k + kPrefetchDist]) * HF, HF);
        const T* __restrict hw = Hw + static_cast<int64_t>(col[k]) * HF;
        T dot[H];
        if constexpr (FC == 8) {
          for (int64_t h = 0; h < H; ++h) {
            T a = 0;
            for (int64_t f = 0; f < 8; ++f) a += g[h * 8 + f] * hw[h * 8 + f];
            dot[h] = a;
          }
        } else if constexpr (FC > 0) {
          for (int h = 0; h < 8; ++h) dot[h] = T(0);
          for (int c = 0; c < FC; ++c) {
            const V p = Gv[c] * vload<V>(hw + 8 * c);
            for (int l = 0; l < 8; ++l) dot[(8 * c + l) / FC] += p[l];
          }
        } else {
          for (int64_t h = 0; h < H; ++h) {
            T a = 0;
            for (int64_t f = 0; f < F; ++f) a += g[h * F + f] * hw[h * F + f];
            dot[h] = a;
          }
        }
        V dv = vload<V>(dot);
        const V al = vload<V>(alpha + k * H);
        V at = al;
        if (d.active) {
          const typename L8<T>::M keep = keep8<T>(d, static_cast<uint64_t>(k * H));
          dv = keep ? dv * sc : zero;
          at = keep ? al * sc : zero;
        }
        vstore(ds + k * H, dv);
        vstore(ad_t + static_cast<int64_t>(tpos[k]) * H, at);
        S += al * dv;
      }
      for (int64_t k = beg; k < end; ++k) {
        const V de = vload<V>(alpha + k * H) * (vload<V>(ds + k * H) - S);
        const V sv = vload<V>(a_s + static_cast<int64_t>(col[k]) * H) + adi;
        const V v = sv > zero ? de : de * vslope;
        vstore(ds_t + static_cast<int64_t>(tpos[k]) * H, v);
        Acc += v;
      }
      vstore(da_d + i * H, Acc);
    }
    // (implicit barrier: ds and da_d are complete)
    T* __restrict ls = acc_s.data() + static_cast<size_t>(tid) * HF;
    T* __restrict ld = acc_d.data() + static_cast<size_t>(tid) * HF;
    if constexpr (FC > 0) {
      // the dHw row and this thread's d att partial sums stay in registers
      V LS[FC], LD[FC];
      for (int c = 0; c < FC; ++c) LS[c] = LD[c] = zero;
#pragma omp for schedule(static)
      for (int64_t j = 0; j < N; ++j) {
        V D[FC];
        for (int c = 0; c < FC; ++c) D[c] = zero;
        V S = zero;
        const int64_t end = trp[j + 1];
        for (int64_t t = trp[j]; t < end; ++t) {
          if (t + kPrefetchDist < E) prefetch_row(G + static_cast<int64_t>(tcol[t + kPrefetchDist]) * HF, HF);
          const T* __restrict g = G + static_cast<int64_t>(tcol[t]) * HF;
          S += vload<V>(ds_t + t * H);
          const V a = vload<V>(ad_t + t * H);
          for (int c = 0; c < FC; ++c) D[c] += head_coef<T, FC>(a, c) * vload<V>(g + 8 * c);
        }
        const V Dd = vload<V>(da_d + j * H);
        const T* __restrict hw = Hw + j * HF;
        for (int c = 0; c < FC; ++c) {
          const V sc_c = head_coef<T, FC>(S, c), dd_c = head_coef<T, FC>(Dd, c);
          const V hv = vload<V>(hw + 8 * c);
          D[c] += sc_c * vload<V>(att_src + 8 * c) + dd_c * vload<V>(att_dst + 8 * c);
          vstore(dHw + j * HF + 8 * c, D[c]);
          LS[c] += sc_c * hv;
          LD[c] += dd_c * hv;
        }
      }
      for (int c = 0; c < FC; ++c) {
        vstore(ls + 8 * c, LS[c]);
        vstore(ld + 8 * c, LD[c]);
      }
    } else {
#pragma omp for schedule(static)
      for (int64_t j = 0; j < N; ++j) {
        T* __restrict dh = dHw + j * HF;
        const T* __restrict hw = Hw + j * HF;
        for (int64_t q = 0; q < HF; ++q) dh[q] = T(0);
        V S = zero;
        const int64_t end = trp[j + 1];
        for (int64_t t = trp[j]; t < end; ++t) {
          if (t + kPrefetchDist < E) prefetch_row(G + static_cast<int64_t>(tcol[t + kPrefetchDist]) * HF, HF);
          const T* __restrict g = G + static_cast<int64_t>(tcol[t]) * HF;
          S += vload<V>(ds_t + t * H);
          const V a = vload<V>(ad_t + t * H);
          for (int64_t h = 0; h < H; ++h) {
            const T ah = a[h];
            for (int64_t f = 0; f < F; ++f) dh[h * F + f] += ah * g[h * F + f];
          }
        }
        const V Dd = vload<V>(da_d + j * H);
        for (int64_t h = 0; h < H; ++h) {
          const T sh = S[h], th = Dd[h];
          for (int64_t f = 0; f < F; ++f) {
            dh[h * F + f] += sh * att_src[h * F + f] + th * att_dst[h * F + f];
            ls[h * F + f] += sh * hw[h * F + f];
            ld[h * F + f] += th * hw[h * F + f];
          }
        }
      }
    }
  }
  for (int64_t q = 0; q < HF; ++q) datt_src[q] = datt_dst[q] = T(0);
  for (int t = 0; t < nt; ++t)
    for (int64_t q = 0; q < HF; ++q) {
      datt_src[q] += acc_s[static_cast<size_t>(t) * HF + q];
      datt_dst[q] += acc_d[static_cast<size_t>(t) * HF + q];
    }
}

// H = 1 (the last layer of most models): per-edge scalars, vectorised across a
// row's edges; the aggregation reuses the register-blocked row kernel.
template <typename T>
void gat_fwd_h1(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst, T* out,
                T* alpha, T* a_s, T* a_d, int64_t N, int64_t F, T slope, Drop d) {
  const int64_t* __restrict rp = rowptr;
  const int64_t E = rp[N];
  const bool par = (E + N) * F > kParWork;
  const T sc = static_cast<T>(d.active ? d.scale : 1.0);
#pragma omp parallel if (par)
  {
    std::vector<T> coef(kChunk);
#pragma omp for schedule(static)
    for (int64_t j = 0; j < N; ++j) {
      const T* __restrict hw = Hw + j * F;
      T x = 0, y = 0;
      for (int64_t f = 0; f < F; ++f) {
        x += hw[f] * att_src[f];
        y += hw[f] * att_dst[f];
      }
      a_s[j] = x;
      a_d[j] = y;
    }
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      T* __restrict yrow = out + i * F;
      for (int64_t f = 0; f < F; ++f) yrow[f] = T(0);
      const int64_t beg = rp[i], end = rp[i + 1];
      if (beg == end) continue;
      T* __restrict al = alpha + beg;
      const int32_t* __restrict c = col + beg;
      const int64_t deg = end - beg;
      const T ad = a_d[i];
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t q = 0; q < deg; ++q) {
        T s = a_s[c[q]] + ad;
        s = s > T(0) ? s : slope * s;
        al[q] = s;
        m = s > m ? s : m;
      }
      T sum = 0;
      for (int64_t q = 0; q < deg; ++q) {
        const T e = vexp(al[q] - m);
        al[q] = e;
        sum += e;
      }
      const T inv = T(1) / sum;
      for (int64_t q = 0; q < deg; ++q) al[q] *= inv;
      for (int64_t q0 = 0; q0 < deg; q0 += kChunk) {
        const int64_t n = deg - q0 < kChunk ? deg - q0 : kChunk;
        T* __restrict cf = coef.data();
        if (d.active) {
          const uint64_t base = static_cast<uint64_t>(beg + q0);
          for (int64_t q = 0; q < n; ++q)
            cf[q] = (!d.all && GNB_DRAW(d, d.key, base + q) >= d.thresh) ? al[q0 + q] * sc : T(0);
        } else {
          for (int64_t q = 0; q < n; ++q) cf[q] = al[q0 + q];
        }
        rows_accum([](int64_t q) { return q; }, n, c + q0, cf, T(1), Hw, F, F, yrow, 0);
      }
    }
  }
}

template <typename T>
void gat_bwd_h1(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
                const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s, const T* a_d,
                const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src, T* datt_dst, int64_t N,
                int64_t F, T slope, Drop d) {
  const int64_t* __restrict rp = rowptr;
  const int64_t* __restrict trp = trowptr;
  const int64_t E = rp[N];
  const bool par = (E + N) * F > kParWork;
  const T sc = static_cast<T>(d.active ? d.scale : 1.0);
  T* __restrict ds = scratch_e;            // by destination
  T* __restrict ds_t = scratch_e + E;      // transposed order
  T* __restrict ad_t = scratch_e + 2 * E;  // alpha after dropout, transposed order
  const int nt = par ? omp_get_max_threads() : 1;
  std::vector<T> acc_s(static_cast<size_t>(nt) * F, T(0)), acc_d(static_cast<size_t>(nt) * F, T(0));
#pragma omp parallel num_threads(nt) if (par)
  {
    const int tid = omp_get_thread_num();
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t beg = rp[i], end = rp[i + 1];
      const T* __restrict g = G + i * F;
      T S = 0;
      for (int64_t k = beg; k < end; ++k) {
        const T* __restrict hw = Hw + static_cast<int64_t>(col[k]) * F;
        T dot = 0;
        for (int64_t f = 0; f < F; ++f) dot += g[f] * hw[f];
        const bool keep = !d.active || (!d.all && GNB_DRAW(d, d.key, static_cast<uint64_t>(k)) >= d.thresh);
        const T dv = keep ? dot * sc : T(0);
        ds[k] = dv;
        ad_t[tpos[k]] = keep ? alpha[k] * sc : T(0);
        S += alpha[k] * dv;
      }
      T acc = 0;
      const T adi = a_d[i];
      for (int64_t k = beg; k < end; ++k) {
        const T de = alpha[k] * (ds[k] - S);
        const T v = a_s[col[k]] + adi > T(0) ? de : slope * de;
        ds_t[tpos[k]] = v;
        acc += v;
      }
      da_d[i] = acc;
    }
    T* __restrict ls = acc_s.data() + static_cast<size_t>(tid) * F;
    T* __restrict ld = acc_d.data() + static_cast<size_t>(tid) * F;
#pragma omp for schedule(static)
    for (int64_t j = 0; j < N; ++j) {
      T* __restrict dh = dHw + j * F;
      for (int64_t f = 0; f < F; ++f) dh[f] = T(0);
      const int64_t beg = trp[j], end = trp[j + 1];
      rows_accum([](int64_t q) { return q; }, end - beg, tcol + beg, ad_t + beg, T(1), G, F, F, dh, 0);
      T S = 0;
      for (int64_t t = beg; t < end; ++t) S += ds_t[t];
      const T Dd = da_d[j];
      const T* __restrict hw = Hw + j * F;
      for (int64_t f = 0; f < F; ++f) {
        dh[f] += S * att_src[f] + Dd * att_dst[f];
        ls[f] += S * hw[f];
        ld[f] += Dd * hw[f];
      }
    }
  }
  for (int64_t f = 0; f < F; ++f) datt_src[f] = datt_dst[f] = T(0);
  for (int t = 0; t < nt; ++t)
    for (int64_t f = 0; f < F; ++f) {
      datt_src[f] += acc_s[static_cast<size_t>(t) * F + f];
      datt_dst[f] += acc_d[static_cast<size_t>(t) * F + f];
    }
}

template <typename T>
void gat_fwd(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst, T* out,
             T* alpha, T* a_s, T* a_d, int64_t N, int64_t H, int64_t F, T slope, Drop d) {
  if (H == 8) {
    switch (F) {
#define GNB_FWD8(FC) \
  case FC: gat_fwd_h8<T, FC>(rowptr, col, Hw, att_src, att_dst, out, alpha, a_s, a_d, N, F, slope, d); return;
      GNB_FWD8(1) GNB_FWD8(2) GNB_FWD8(3) GNB_FWD8(4) GNB_FWD8(5) GNB_FWD8(6) GNB_FWD8(7) GNB_FWD8(8)
#undef GNB_FWD8
      default: gat_fwd_h8<T, 0>(rowptr, col, Hw, att_src, att_dst, out, alpha, a_s, a_d, N, F, slope, d); return;
    }
  }
  if (H == 1) gat_fwd_h1<T>(rowptr, col, Hw, att_src, att_dst, out, alpha, a_s, a_d, N, F, slope, d);
  else gat_fwd_impl<T, 0, 0>(rowptr, col, Hw, att_src, att_dst, out, alpha, a_s, a_d, N, H, F, slope, d);
}

template <typename T>
void gat_bwd(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
             const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s, const T* a_d,
             const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src, T* datt_dst, int64_t N,
             int64_t H, int64_t F, T slope, Drop d) {
#define GNB_GAT_BWD(HC, FC)                                                                                      \
  gat_bwd_impl<T, HC, FC>(rowptr, col, trowptr, tcol, tpos, Hw, att_src, att_dst, a_s, a_d, alpha, G, scratch_e, da_d, \
                          dHw, datt_src, datt_dst, N, H, F, slope, d)
  if (H == 8) {
    switch (F) {
#define GNB_BWD8(FC)                                                                                           \
  case FC:                                                                                                     \
    gat_bwd_h8<T, FC>(rowptr, col, trowptr, tcol, tpos, Hw, att_src, att_dst, a_s, a_d, alpha, G, scratch_e,   \
                      da_d, dHw, datt_src, datt_dst, N, F, slope, d);                                          \
    return;
      GNB_BWD8(1) GNB_BWD8(2) GNB_BWD8(3) GNB_BWD8(4) GNB_BWD8(5) GNB_BWD8(6) GNB_BWD8(7) GNB_BWD8(8)
#undef GNB_BWD8
      default:
        gat_bwd_h8<T, 0>(rowptr, col, trowptr, tcol, tpos, Hw, att_src, att_dst, a_s, a_d, alpha, G, scratch_e,
                         da_d, dHw, datt_src, datt_dst, N, F, slope, d);
        return;
    }
  }
  if (H == 1)
    gat_bwd_h1<T>(rowptr, col, trowptr, tcol, tpos, Hw, att_src, att_dst, a_s, a_d, alpha, G, scratch_e, da_d, dHw,
                  datt_src, datt_dst, N, F, slope, d);
  else GNB_GAT_BWD(0, 0);
#undef GNB_GAT_BWD
}

#define GNB_INSTANTIATE(T)                                                                                      \
  template void spmm<T>(const SpmmArgs<T>&);                                                                   \
  template void epilogue<T>(const T*, int64_t, const T*, T*, int64_t, int64_t, int, Drop);                     \
  template void sddmm<T>(const int64_t*, const int32_t*, const T*, int64_t, const T*, int64_t, T*, int64_t,     \
                         int64_t);                                                                              \
  template bool skinny_mm<T>(const T*, int64_t, const T*, T*, int64_t, int64_t, int64_t);                       \
  template bool skinny_tgrad<T>(const T*, int64_t, const T*, T*, int64_t, int64_t, int64_t);                    \
  template void epilogue_bwd<T>(const T*, const T*, T*, int64_t, int64_t, int, Drop);                          \
  template void head_mean<T>(const T*, const T*, T*, int64_t, int64_t, int64_t);                                \
  template void csr_mm<T>(const int64_t*, const int32_t*, const T*, const T*, int64_t, T*, int64_t, int64_t,  \
                          Drop);                                                                                \
  template void csr_mm_tgrad_rows<T>(const int64_t*, const int32_t*, const T*, const T*, int64_t, T*, int64_t, \
                                     int64_t, int64_t, Drop);                                                  \
  template void csr_mm_tgrad<T>(const int64_t*, const int32_t*, const int32_t*, const T*, const T*, int64_t,  \
                                T*, int64_t, int64_t, Drop);                                                    \
  template void gat_fwd<T>(const int64_t*, const int32_t*, const T*, const T*, const T*, T*, T*, T*, T*,       \
                           int64_t, int64_t, int64_t, T, Drop);                                                 \
  template void gat_bwd<T>(const int64_t*, const int32_t*, const int64_t*, const int32_t*, const int32_t*,     \
                           const T*, const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,   \
                           T*, T*, int64_t, int64_t, int64_t, T, Drop);

GNB_INSTANTIATE(float)
GNB_INSTANTIATE(double)

}  // namespace cpu
}  // namespace gnb
