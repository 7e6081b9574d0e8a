// CUDA kernels of the native adapter (written for sm_90 / H200; plain CUDA C++,
// nothing Hopper-only, so it also builds for older archs).  Float and double.
// No torch headers: `nvcc -c -arch=sm_90 native_cuda.cu` compiles it alone
// (make native-cuda-check); native_cuda_bind.cpp wraps the launchers for torch.
//
// Mapping: row-wise kernels give each row a group of tpr threads (a power of
// two up to a warp, at least the feature width when that fits), each thread
// owning features f = sub, sub+tpr, ...; GAT uses one warp per row.  Dropout
// masks come from rng.h's counter-based hash, identical to the CPU kernels.
#include <cuda_runtime.h>

#include <cstdint>

#include "native_cuda.h"

namespace gnb {
namespace cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / 32;

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dexpm1(float x) { return expm1f(x); }
__device__ __forceinline__ double dexpm1(double x) { return expm1(x); }

__device__ __forceinline__ float neg_inf(float) { return -__int_as_float(0x7f800000); }
__device__ __forceinline__ double neg_inf(double) { return -__longlong_as_double(0x7ff0000000000000LL); }

template <typename T>
__device__ __forceinline__ T act_fwd(T z, int act) {
  if (act == ACT_RELU) return z > T(0) ? z : T(0);
  if (act == ACT_ELU) return z > T(0) ? z : dexpm1(z);
  return z;
}

template <typename T>
__device__ __forceinline__ T drop_apply(const Drop& d, uint64_t idx, T z) {
  if (!d.active) return z;
  return kept(d, idx) ? z * static_cast<T>(d.scale) : T(0);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max(T v) {
  for (int o = 16; o > 0; o >>= 1) {
    const T w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

int threads_per_row(int64_t F) {
  int t = 1;
  while (t < 32 && t < F) t <<= 1;
  return t;
}

unsigned grid_for(int64_t threads) {
  const int64_t b = (threads + kBlock - 1) / kBlock;
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// ---------------------------------------------------------------------------
template <typename T>
__global__ void spmm_kernel(SpmmArgs<T> a, int tpr) {
  const int64_t gt = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t i = gt / tpr;
  const int sub = static_cast<int>(gt % tpr);
  if (i >= a.N) return;
  const int64_t beg = a.rowptr[i], end = a.rowptr[i + 1];
  for (int64_t f = sub; f < a.F; f += tpr) {
    T acc = a.bias ? a.bias[f] : T(0);
    if (a.R) acc += a.R[i * a.ldr + f];
    for (int64_t k = beg; k < end; ++k)
      acc += (a.val ? a.val[k] : T(1)) * a.X[static_cast<int64_t>(a.col[k]) * a.ldx + f];
    a.Y[i * a.ldy + f] = drop_apply(a.drop, static_cast<uint64_t>(i * a.F + f), act_fwd(acc, a.act));
  }
}

// one warp per row; lanes over features, a warp reduction per edge
template <typename T>
__global__ void sddmm_kernel(const int64_t* rp, const int32_t* col, const T* U, int64_t ldu, const T* V, int64_t ldv,
                             T* out, int64_t N, int64_t F) {
  const int lane = threadIdx.x & 31;
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (i >= N) return;
  const int64_t beg = rp[i], end = rp[i + 1];
  for (int64_t k = beg; k < end; ++k) {
    const T* u = U + static_cast<int64_t>(col[k]) * ldu;
    T acc = 0;
    for (int64_t f = lane; f < F; f += 32) acc += u[f] * V[i * ldv + f];
    acc = warp_sum(acc);
    if (lane == 0) out[k] = acc;
  }
}

template <typename T>
__global__ void epilogue_kernel(const T* X, int64_t ldx, const T* bias, T* Y, int64_t N, int64_t F, int act,
                                Drop d) {
  const int64_t total = N * F;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / F, f = e % F;
    T z = X[i * ldx + f] + (bias ? bias[f] : T(0));
    Y[e] = drop_apply(d, static_cast<uint64_t>(e), act_fwd(z, act));
  }
}

template <typename T>
__global__ void epilogue_bwd_kernel(const T* Y, const T* G, T* O, int64_t total, int act, Drop d) {
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T y = Y[e], g = G[e];
    T v;
    if (act == ACT_RELU) v = y > T(0) ? g * s : T(0);
    else if (act == ACT_ELU) v = y > T(0) ? g * s : g * (y + s);
    else v = g * s;
    if (d.active && !kept(d, static_cast<uint64_t>(e))) v = T(0);
    O[e] = v;
  }
}

template <typename T>
__global__ void head_mean_kernel(const T* X, const T* bias, T* Y, int64_t N, int64_t H, int64_t F) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= N * F) return;
  const int64_t i = e / F, f = e % F;
  T acc = 0;
  for (int64_t h = 0; h < H; ++h) acc += X[(i * H + h) * F + f];
  Y[e] = acc / static_cast<T>(H) + (bias ? bias[f] : T(0));
}

template <typename T>
__global__ void csr_mm_kernel(const int64_t* rp, const int32_t* col, const T* val, const T* W, int64_t ldw, T* Y,
                              int64_t N, int64_t Fo, Drop d, int tpr) {
  const int64_t gt = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t i = gt / tpr;
  const int sub = static_cast<int>(gt % tpr);
  if (i >= N) return;
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
  const int64_t beg = rp[i], end = rp[i + 1];
  for (int64_t f = sub; f < Fo; f += tpr) {
    T acc = 0;
    for (int64_t k = beg; k < end; ++k)
      if (kept(d, static_cast<uint64_t>(k))) acc += val[k] * W[static_cast<int64_t>(col[k]) * ldw + f];
    Y[i * Fo + f] = acc * s;
  }
}

template <typename T>
__global__ void csr_mm_tgrad_kernel(const int64_t* cp, const int32_t* crow, const int32_t* cperm, const T* cval,
                                    const T* G, int64_t ldg, T* O, int64_t Fin, int64_t Fo, Drop d, int tpr) {
  const int64_t gt = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t c = gt / tpr;
  const int sub = static_cast<int>(gt % tpr);
  if (c >= Fin) return;
  const T s = static_cast<T>(d.active ? d.scale : 1.0);
  const int64_t beg = cp[c], end = cp[c + 1];
  for (int64_t f = sub; f < Fo; f += tpr) {
    T acc = 0;
    for (int64_t t = beg; t < end; ++t)
      if (kept(d, static_cast<uint64_t>(cperm[t]))) acc += cval[t] * G[static_cast<int64_t>(crow[t]) * ldg + f];
    O[c * Fo + f] = acc * s;
  }
}

// ---------------------------------------------------------------------------
// GAT
template <typename T>
__global__ void gat_scores_kernel(const T* Hw, const T* att_src, const T* att_dst, T* a_s, T* a_d, int64_t N,
                                  int64_t H, int64_t F) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;   // (node, head)
  if (p >= N * H) return;
  const int64_t h = p % H;
  const T* x = Hw + p * F;
  T s = 0, t = 0;
  for (int64_t f = 0; f < F; ++f) {
    s += x[f] * att_src[h * F + f];
    t += x[f] * att_dst[h * F + f];
  }
  a_s[p] = s;
  a_d[p] = t;
}

// one warp per destination row: softmax per head over the row's edges, then
// lanes over the row's H*F outputs for the attention-weighted sum
template <typename T>
__global__ void gat_fwd_kernel(const int64_t* rp, const int32_t* col, const T* Hw, const T* a_s, const T* a_d,
                               T* out, T* alpha, int64_t N, int64_t H, int64_t F, T slope, Drop d) {
  const int lane = threadIdx.x & 31;
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (i >= N) return;
  const int64_t beg = rp[i], end = rp[i + 1], HF = H * F;
  for (int64_t h = 0; h < H; ++h) {
    const T ad = a_d[i * H + h];
    T m = neg_inf(T(0));
    for (int64_t k = beg + lane; k < end; k += 32) {
      T s = a_s[static_cast<int64_t>(col[k]) * H + h] + ad;
      s = s > T(0) ? s : slope * s;
      alpha[k * H + h] = s;
      m = s > m ? s : m;
    }
    m = warp_max(m);
    T sum = 0;
    for (int64_t k = beg + lane; k < end; k += 32) {
      const T e = dexp(alpha[k * H + h] - m);
      alpha[k * H + h] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    const T inv = sum > T(0) ? T(1) / sum : T(0);
    for (int64_t k = beg + lane; k < end; k += 32) alpha[k * H + h] *= inv;
  }
  __syncwarp();
  for (int64_t q = lane; q < HF; q += 32) {
    const int64_t h = q / F;
    T acc = 0;
    for (int64_t k = beg; k < end; ++k) {
      const T a = drop_apply(d, static_cast<uint64_t>(k * H + h), alpha[k * H + h]);
      acc += a * Hw[static_cast<int64_t>(col[k]) * HF + q];
    }
    out[i * HF + q] = acc;
  }
}

// pass A: one warp per destination row; lanes over (edge, head) pairs.
// Shared memory: per warp S[H] and Acc[H].
template <typename T>
__global__ void gat_bwd_a_kernel(const int64_t* rp, const int32_t* col, const int32_t* tpos, const T* Hw,
                                 const T* a_s, const T* a_d, const T* alpha, const T* G, T* ds, T* ds_t, T* ad_t,
                                 T* da_d, int64_t N, int64_t H, int64_t F, T slope, Drop d) {
  extern __shared__ unsigned char smem_raw[];
  T* smem = reinterpret_cast<T*>(smem_raw);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T* S = smem + static_cast<int64_t>(warp) * 2 * H;
  T* Acc = S + H;
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const bool live = i < N;
  for (int64_t h = lane; h < H; h += 32) S[h] = Acc[h] = T(0);
  __syncwarp();
  if (!live) return;
  const int64_t beg = rp[i], end = rp[i + 1], HF = H * F, pairs = (end - beg) * H;
  const T sc = static_cast<T>(d.active ? d.scale : 1.0);
  for (int64_t p = lane; p < pairs; p += 32) {
    const int64_t k = beg + p / H, h = p % H;
    const T* x = Hw + static_cast<int64_t>(col[k]) * HF + h * F;
    const T* g = G + i * HF + h * F;
    T dot = 0;
    for (int64_t f = 0; f < F; ++f) dot += g[f] * x[f];
    const bool keep = kept(d, static_cast<uint64_t>(k * H + h));
    const T dv = keep ? dot * sc : T(0);
    const T al = alpha[k * H + h];
    ds[k * H + h] = dv;
    ad_t[static_cast<int64_t>(tpos[k]) * H + h] = keep ? al * sc : T(0);
    atomicAdd(&S[h], al * dv);
  }
  __syncwarp();
  for (int64_t p = lane; p < pairs; p += 32) {
    const int64_t k = beg + p / H, h = p % H;
    const T de = alpha[k * H + h] * (ds[k * H + h] - S[h]);
    const T sv = a_s[static_cast<int64_t>(col[k]) * H + h] + a_d[i * H + h];
    const T v = sv > T(0) ? de : slope * de;
    ds_t[static_cast<int64_t>(tpos[k]) * H + h] = v;
    atomicAdd(&Acc[h], v);
  }
  __syncwarp();
  for (int64_t h = lane; h < H; h += 32) da_d[i * H + h] = Acc[h];
}

// pass B: warps stride over source rows (transposed CSR); lanes over H*F.
// Shared memory: the block's partial d att_src, d att_dst [H*F each].
template <typename T>
__global__ void gat_bwd_b_kernel(const int64_t* trp, const int32_t* tcol, const T* Hw, const T* att_src,
                                 const T* att_dst, const T* G, const T* ds_t, const T* ad_t, const T* da_d, T* dHw,
                                 T* datt_src, T* datt_dst, int64_t N, int64_t H, int64_t F) {
  extern __shared__ unsigned char smem_raw[];
  T* s_src = reinterpret_cast<T*>(smem_raw);
  const int64_t HF = H * F;
  T* s_dst = s_src + HF;
  for (int64_t q = threadIdx.x; q < HF; q += blockDim.x) s_src[q] = s_dst[q] = T(0);
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t j = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; j < N; j += warps) {
    const int64_t beg = trp[j], end = trp[j + 1];
    for (int64_t q = lane; q < HF; q += 32) {
      const int64_t h = q / F;
      T acc = 0, sh = 0;
      for (int64_t t = beg; t < end; ++t) {
        acc += ad_t[t * H + h] * G[static_cast<int64_t>(tcol[t]) * HF + q];
        sh += ds_t[t * H + h];
      }
      const T dd = da_d[j * H + h];
      dHw[j * HF + q] = acc + sh * att_src[q] + dd * att_dst[q];
      const T hw = Hw[j * HF + q];
      atomicAdd(&s_src[q], sh * hw);
      atomicAdd(&s_dst[q], dd * hw);
    }
  }
  __syncthreads();
  for (int64_t q = threadIdx.x; q < HF; q += blockDim.x) {
    atomicAdd(&datt_src[q], s_src[q]);
    atomicAdd(&datt_dst[q], s_dst[q]);
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// launchers
template <typename T>
void spmm(const SpmmArgs<T>& a, cudaStream_t stream) {
  if (a.N == 0 || a.F == 0) return;
  const int tpr = threads_per_row(a.F);
  spmm_kernel<T><<<grid_for(a.N * tpr), kBlock, 0, stream>>>(a, tpr);
}

template <typename T>
void sddmm(const int64_t* rowptr, const int32_t* col, const T* U, int64_t ldu, const T* V, int64_t ldv, T* out,
           int64_t N, int64_t F, cudaStream_t stream) {
  if (N == 0) return;
  sddmm_kernel<T><<<grid_for(N * 32), kBlock, 0, stream>>>(rowptr, col, U, ldu, V, ldv, out, N, F);
}

template <typename T>
void epilogue(const T* X, int64_t ldx, const T* bias, T* Y, int64_t N, int64_t F, int act, Drop d,
              cudaStream_t stream) {
  if (N * F == 0) return;
  const int64_t b = (N * F + kBlock - 1) / kBlock;
  epilogue_kernel<T><<<static_cast<unsigned>(b < 65535 ? b : 65535), kBlock, 0, stream>>>(X, ldx, bias, Y, N, F,
                                                                                         act, d);
}

template <typename T>
void epilogue_bwd(const T* Y, const T* G, T* O, int64_t N, int64_t F, int act, Drop d, cudaStream_t stream) {
  if (N * F == 0) return;
  const int64_t b = (N * F + kBlock - 1) / kBlock;
  epilogue_bwd_kernel<T><<<static_cast<unsigned>(b < 65535 ? b : 65535), kBlock, 0, stream>>>(Y, G, O, N * F, act,
                                                                                             d);
}

template <typename T>
void head_mean(const T* X, const T* bias, T* Y, int64_t N, int64_t H, int64_t F, cudaStream_t stream) {
  if (N * F == 0) return;
  head_mean_kernel<T><<<grid_for(N * F), kBlock, 0, stream>>>(X, bias, Y, N, H, F);
}

template <typename T>
void csr_mm(const int64_t* rowptr, const int32_t* col, const T* val, const T* W, int64_t ldw, T* Y, int64_t N,
            int64_t Fo, Drop d, cudaStream_t stream) {
  if (N == 0 || Fo == 0) return;
  const int tpr = threads_per_row(Fo);
  csr_mm_kernel<T><<<grid_for(N * tpr), kBlock, 0, stream>>>(rowptr, col, val, W, ldw, Y, N, Fo, d, tpr);
}

template <typename T>
void csr_mm_tgrad(const int64_t* cptr, const int32_t* crow, const int32_t* cperm, const T* cval, const T* G,
                  int64_t ldg, T* O, int64_t Fin, int64_t Fo, Drop d, cudaStream_t stream) {
  if (Fin == 0 || Fo == 0) return;
  const int tpr = threads_per_row(Fo);
  csr_mm_tgrad_kernel<T><<<grid_for(Fin * tpr), kBlock, 0, stream>>>(cptr, crow, cperm, cval, G, ldg, O, Fin, Fo,
                                                                      d, tpr);
}

template <typename T>
void gat_fwd(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst, T* out,
             T* alpha, T* a_s, T* a_d, int64_t N, int64_t H, int64_t F, T slope, Drop d, cudaStream_t stream) {
  if (N == 0) return;
  gat_scores_kernel<T><<<grid_for(N * H), kBlock, 0, stream>>>(Hw, att_src, att_dst, a_s, a_d, N, H, F);
  gat_fwd_kernel<T><<<grid_for(N * 32), kBlock, 0, stream>>>(rowptr, col, Hw, a_s, a_d, out, alpha, N, H, F, slope,
                                                             d);
}

template <typename T>
void gat_bwd(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
             const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s, const T* a_d,
             const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src, T* datt_dst, int64_t N,
             int64_t E, int64_t H, int64_t F, T slope, Drop d, cudaStream_t stream) {
  const int64_t HF = H * F;
  cudaMemsetAsync(datt_src, 0, sizeof(T) * HF, stream);
  cudaMemsetAsync(datt_dst, 0, sizeof(T) * HF, stream);
  if (N == 0) return;
  T* ds = scratch_e;
  T* ds_t = scratch_e + E * H;
  T* ad_t = scratch_e + 2 * E * H;
  const size_t smem_a = sizeof(T) * 2 * H * kWarpsPerBlock;
  gat_bwd_a_kernel<T><<<grid_for(N * 32), kBlock, smem_a, stream>>>(rowptr, col, tpos, Hw, a_s, a_d, alpha, G, ds,
                                                                      ds_t, ad_t, da_d, N, H, F, slope, d);
  const int64_t want = (N + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const unsigned blocks = static_cast<unsigned>(want < 1024 ? want : 1024);
  gat_bwd_b_kernel<T><<<blocks, kBlock, sizeof(T) * 2 * HF, stream>>>(trowptr, tcol, Hw, att_src, att_dst, G, ds_t,
                                                                       ad_t, da_d, dHw, datt_src, datt_dst, N, H, F);
}

const char* last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

#define GNB_CUDA_INSTANTIATE(T)                                                                                  \
  template void spmm<T>(const SpmmArgs<T>&, cudaStream_t);                                                      \
  template void epilogue<T>(const T*, int64_t, const T*, T*, int64_t, int64_t, int, Drop, cudaStream_t);         \
  template void sddmm<T>(const int64_t*, const int32_t*, const T*, int64_t, const T*, int64_t, T*, int64_t,      \
                         int64_t, cudaStream_t);                                                                \
  template void epilogue_bwd<T>(const T*, const T*, T*, int64_t, int64_t, int, Drop, cudaStream_t);              \
  template void head_mean<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, cudaStream_t);                   \
  template void csr_mm<T>(const int64_t*, const int32_t*, const T*, const T*, int64_t, T*, int64_t, int64_t,    \
                          Drop, cudaStream_t);                                                                  \
  template void csr_mm_tgrad<T>(const int64_t*, const int32_t*, const int32_t*, const T*, const T*, int64_t,    \
                                T*, int64_t, int64_t, Drop, cudaStream_t);                                      \
  template void gat_fwd<T>(const int64_t*, const int32_t*, const T*, const T*, const T*, T*, T*, T*, T*,         \
                           int64_t, int64_t, int64_t, T, Drop, cudaStream_t);                                   \
  template void gat_bwd<T>(const int64_t*, const int32_t*, const int64_t*, const int32_t*, const int32_t*,       \
                           const T*, const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,     \
                           T*, T*, int64_t, int64_t, int64_t, int64_t, T, Drop, cudaStream_t);

GNB_CUDA_INSTANTIATE(float)
GNB_CUDA_INSTANTIATE(double)

}  // namespace cuda
}  // namespace gnb
