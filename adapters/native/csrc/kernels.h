// Launchers of the native kernels, on raw pointers (no torch headers), so the
// kernels compile on their own and fast: cpu_kernels.cpp (C++/OpenMP) and
// native_cuda.cu (CUDA) implement the same interface; native_cpu.cpp and
// native_cuda_bind.cpp wrap them for torch.
//
// Conventions
//   graph CSR by destination: rowptr int64 [N+1], col int32 [E] = source node,
//     val [E] (optional edge weight):  out[i] = sum_k val[k] * X[col[k]].
//   transposed CSR (by source), built once in Python: trowptr, tcol = destination,
//     tperm int32 [E] = for each transposed position, the edge's position in the
//     by-destination order; tpos int32 [E] = its inverse.
//   row strides (ld*) allow column slices of a wider matrix.
//   dropout is counter-based (rng.h); logical index of element (i, f) of an
//     [N, F] output: i*F+f; of edge k / head h: k*H+h; of a non-zero of a sparse
//     input: its CSR position.  Backward passes recompute the mask.
#pragma once
#include <cstdint>
#include <vector>

#include "rng.h"

namespace gnb {

// Y = drop(act(A X + R + bias))
template <typename T>
struct SpmmArgs {
  const int64_t* rowptr;
  const int32_t* col;
  const T* val;    // nullable: weight 1
  const T* X;
  int64_t ldx;
  const T* R;      // nullable: added before the epilogue
  int64_t ldr;
  const T* bias;   // nullable
  T* Y;
  int64_t ldy;
  int64_t N, F;
  int act;
  Drop drop;
};

namespace cpu {

template <typename T> void spmm(const SpmmArgs<T>& a);
// Y[N,F] = drop(act(X + bias))
template <typename T>
void epilogue(const T* X, int64_t ldx, const T* bias, T* Y, int64_t N, int64_t F, int act, Drop d);
// Y[N,F] = mean over H heads of X[N,H,F] + bias (GAT's last layer)
template <typename T>
void head_mean(const T* X, const T* bias, T* Y, int64_t N, int64_t H, int64_t F);
// O = dL/dz from Y = drop(act(z)) and G = dL/dY (all contiguous [N,F])
template <typename T>
void epilogue_bwd(const T* Y, const T* G, T* O, int64_t N, int64_t F, int act, Drop d);
// Y[N,Fo] = drop_nnz(X_csr) @ W
template <typename T>
void csr_mm(const int64_t* rowptr, const int32_t* col, const T* val, const T* W, int64_t ldw, T* Y, int64_t N,
            int64_t Fo, Drop d);
// O[Fin,Fo] = drop_nnz(X)^T @ G through X's CSC (cptr [Fin+1], crow, cperm = CSR position, cval)
template <typename T>
void csr_mm_tgrad(const int64_t* cptr, const int32_t* crow, const int32_t* cperm, const T* cval, const T* G,
                  int64_t ldg, T* O, int64_t Fin, int64_t Fo, Drop d);
// the same through X's CSR, with per-thread [Fin,Fo] accumulators (G read in order)
template <typename T>
void csr_mm_tgrad_rows(const int64_t* rowptr, const int32_t* col, const T* val, const T* G, int64_t ldg, T* O,
                       int64_t N, int64_t Fin, int64_t Fo, Drop d);
// fused GAT attention: a_s/a_d = <Hw, att>, e = leaky(a_s[j] + a_d[i]), alpha = softmax_i(e),
// out[i] = sum_k drop(alpha) Hw[j].  Hw [N,H,F]; alpha [E,H]; a_s, a_d [N,H].
template <typename T>
void gat_fwd(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst, T* out,
             T* alpha, T* a_s, T* a_d, int64_t N, int64_t H, int64_t F, T slope, Drop d);
// its backward; scratch_e [3*E*H] and da_d [N,H] are scratch; writes dHw, datt_src, datt_dst.
// Pass A (by destination) writes the per-edge results it hands to pass B (by source)
// straight into transposed order (tpos), so pass B streams them.
template <typename T>
void gat_bwd(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
             const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s, const T* a_d,
             const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src, T* datt_dst, int64_t N,
             int64_t H, int64_t F, T slope, Drop d);
// out[k] = <U[col[k]], V[i]> for every edge k of row i (the general SDDMM, as DGL's u_dot_v)
template <typename T>
void sddmm(const int64_t* rowptr, const int32_t* col, const T* U, int64_t ldu, const T* V, int64_t ldv, T* out,
           int64_t N, int64_t F);
// skinny dense products of the hidden layers, where MKL is slow:
//   Y[N,M] = X[N,K] @ W[K,M]  (M <= 16 floats / 8 doubles, K <= 1024);
//   O[K,M] = X^T @ G[N,M]     (M <= 16, K in {16,32,64} floats / {8,16,32} doubles).
// Return false (doing nothing) for shapes they do not handle.
template <typename T>
bool skinny_mm(const T* X, int64_t ldx, const T* W, T* Y, int64_t N, int64_t K, int64_t M);
template <typename T>
bool skinny_tgrad(const T* X, int64_t ldx, const T* G, T* O, int64_t N, int64_t K, int64_t M);
int max_threads();

// One layer of uniform neighbour sampling (sampler.cpp); ``pos`` is an all -1 scratch array of
// one int32 per graph node, left all -1 again.
struct SampledBlock {
  std::vector<int64_t> rowptr;      // [n_dst + 1], by destination
  std::vector<int32_t> col;         // [nnz], local source ids
  std::vector<int64_t> src_nodes;   // [n_src], global ids; the first n_dst are the destinations
  std::vector<int64_t> trowptr;     // [n_src + 1], by source
  std::vector<int32_t> tcol;        // [nnz], local destination ids
  std::vector<int64_t> tperm;       // [nnz], by-source position -> by-destination position
};
void sample_layer(const int64_t* rowptr, const int32_t* col, const int64_t* seeds, int64_t n_seeds, int64_t fanout,
                  uint64_t key, int32_t* pos, SampledBlock& out);

}  // namespace cpu
}  // namespace gnb
