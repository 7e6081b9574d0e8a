// CUDA launchers of the native kernels (native_cuda.cu), on raw device
// pointers: the same interface and conventions as the CPU kernels (kernels.h),
// plus the stream to launch on.  No torch headers, so `nvcc -c` compiles the
// .cu file on its own (make native-cuda-check).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels.h"

namespace gnb {
namespace cuda {

template <typename T> void spmm(const SpmmArgs<T>& a, cudaStream_t stream);
template <typename T>
void epilogue(const T* X, int64_t ldx, const T* bias, T* Y, int64_t N, int64_t F, int act, Drop d,
              cudaStream_t stream);
template <typename T>
void epilogue_bwd(const T* Y, const T* G, T* O, int64_t N, int64_t F, int act, Drop d, cudaStream_t stream);
template <typename T>
void head_mean(const T* X, const T* bias, T* Y, int64_t N, int64_t H, int64_t F, cudaStream_t stream);
template <typename T>
void csr_mm(const int64_t* rowptr, const int32_t* col, const T* val, const T* W, int64_t ldw, T* Y, int64_t N,
            int64_t Fo, Drop d, cudaStream_t stream);
// through X's CSC: one output row per feature, no atomics
template <typename T>
void csr_mm_tgrad(const int64_t* cptr, const int32_t* crow, const int32_t* cperm, const T* cval, const T* G,
                  int64_t ldg, T* O, int64_t Fin, int64_t Fo, Drop d, cudaStream_t stream);
template <typename T>
void gat_fwd(const int64_t* rowptr, const int32_t* col, const T* Hw, const T* att_src, const T* att_dst, T* out,
             T* alpha, T* a_s, T* a_d, int64_t N, int64_t H, int64_t F, T slope, Drop d, cudaStream_t stream);
// scratch_e [3*E*H] and da_d [N,H] scratch, as on the CPU; datt_* are zeroed here
template <typename T>
void gat_bwd(const int64_t* rowptr, const int32_t* col, const int64_t* trowptr, const int32_t* tcol,
             const int32_t* tpos, const T* Hw, const T* att_src, const T* att_dst, const T* a_s, const T* a_d,
             const T* alpha, const T* G, T* scratch_e, T* da_d, T* dHw, T* datt_src, T* datt_dst, int64_t N,
             int64_t E, int64_t H, int64_t F, T slope, Drop d, cudaStream_t stream);

template <typename T>
void sddmm(const int64_t* rowptr, const int32_t* col, const T* U, int64_t ldu, const T* V, int64_t ldv, T* out,
           int64_t N, int64_t F, cudaStream_t stream);

// the last launch error as text (nullptr when none)
const char* last_error();

}  // namespace cuda
}  // namespace gnb
