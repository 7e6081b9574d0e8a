// torch bindings of the CUDA kernels (native_cuda.cu): the same functions and
// arguments as the CPU module (native_cpu.cpp), so the Python side is
// device-agnostic.  Launches go to torch's current stream.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <vector>

#include "native_cuda.h"

using at::Tensor;
using gnb::Drop;
using OptT = std::optional<Tensor>;

namespace {

int64_t ld(const Tensor& t) { return t.dim() == 2 ? t.stride(0) : t.size(-1); }

void check_cuda(const Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "native cuda: ", name, " must be a CUDA tensor");
}

void check_index(const Tensor& rowptr, const Tensor& col) {
  check_cuda(rowptr, "rowptr");
  check_cuda(col, "col");
  TORCH_CHECK(rowptr.scalar_type() == at::kLong && rowptr.is_contiguous() && rowptr.dim() == 1 && rowptr.numel() >= 1,
              "native: rowptr must be a contiguous 1-D int64 tensor");
  TORCH_CHECK(col.scalar_type() == at::kInt && col.is_contiguous(), "native: col must be contiguous int32");
}

void check_rows(const Tensor& x, const char* name) {
  check_cuda(x, name);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "native: ", name,
              " must be float32 or float64");
  TORCH_CHECK(x.dim() == 2, "native: ", name, " must be 2-D");
  TORCH_CHECK(x.stride(1) == 1 || x.size(1) <= 1, "native: ", name, " rows must be contiguous");
}

void check_vec(const OptT& v, int64_t n, const Tensor& like, const char* name) {
  if (!v) return;
  TORCH_CHECK(v->is_cuda() && v->is_contiguous() && v->numel() == n && v->scalar_type() == like.scalar_type(),
              "native: ", name, " must be a contiguous CUDA tensor of ", n, " elements and dtype ",
              like.scalar_type());
}

void check_launch() {
  const char* err = gnb::cuda::last_error();
  TORCH_CHECK(err == nullptr, "native cuda kernel launch failed: ", err ? err : "");
}

template <typename F>
void dispatch(const Tensor& t, F&& fn) {
  if (t.scalar_type() == at::kFloat) fn(float{});
  else if (t.scalar_type() == at::kDouble) fn(double{});
  else TORCH_CHECK(false, "native: unsupported dtype ", t.scalar_type());
}

template <typename T>
const T* ptr(const OptT& t) { return t ? t->data_ptr<T>() : nullptr; }

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

Tensor spmm(Tensor rowptr, Tensor col, OptT val, Tensor X, OptT R, OptT bias, int64_t act, double p, int64_t seed,
            int64_t ctr, OptT out) {
  check_index(rowptr, col);
  check_rows(X, "X");
  c10::cuda::CUDAGuard guard(X.device());
  const int64_t N = rowptr.size(0) - 1, F = X.size(1);
  Tensor Y = out ? *out : at::empty({N, F}, X.options());
  check_rows(Y, "out");
  TORCH_CHECK(Y.size(0) == N && Y.size(1) == F && Y.scalar_type() == X.scalar_type(), "native spmm: bad out");
  check_vec(val, col.numel(), X, "val");
  check_vec(bias, F, X, "bias");
  if (R) {
    check_rows(*R, "R");
    TORCH_CHECK(R->size(0) == N && R->size(1) == F && R->scalar_type() == X.scalar_type(), "native spmm: bad R");
  }
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    gnb::SpmmArgs<T> a{rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), ptr<T>(val), X.data_ptr<T>(), ld(X),
                       ptr<T>(R), R ? ld(*R) : 0, ptr<T>(bias), Y.data_ptr<T>(), ld(Y), N, F,
                       static_cast<int>(act), gnb::make_drop(p, seed, ctr)};
    gnb::cuda::spmm<T>(a, stream());
  });
  check_launch();
  return Y;
}

Tensor sddmm(Tensor rowptr, Tensor col, Tensor U, Tensor V) {
  check_index(rowptr, col);
  check_rows(U, "U");
  check_rows(V, "V");
  c10::cuda::CUDAGuard guard(U.device());
  const int64_t N = rowptr.size(0) - 1, F = U.size(1);
  TORCH_CHECK(V.size(0) == N && V.size(1) == F && U.scalar_type() == V.scalar_type(), "native sddmm: bad V");
  Tensor out = at::empty({col.numel()}, U.options());
  dispatch(U, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::sddmm<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), U.data_ptr<T>(), ld(U), V.data_ptr<T>(),
                        ld(V), out.data_ptr<T>(), N, F, stream());
  });
  check_launch();
  return out;
}

Tensor epilogue(Tensor X, OptT bias, int64_t act, double p, int64_t seed, int64_t ctr) {
  check_rows(X, "X");
  c10::cuda::CUDAGuard guard(X.device());
  const int64_t N = X.size(0), F = X.size(1);
  check_vec(bias, F, X, "bias");
  Tensor Y = at::empty({N, F}, X.options());
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::epilogue<T>(X.data_ptr<T>(), ld(X), ptr<T>(bias), Y.data_ptr<T>(), N, F, static_cast<int>(act),
                           gnb::make_drop(p, seed, ctr), stream());
  });
  check_launch();
  return Y;
}

Tensor head_mean(Tensor X, OptT bias) {
  check_cuda(X, "X");
  TORCH_CHECK(X.dim() == 3 && X.is_contiguous() && (X.scalar_type() == at::kFloat || X.scalar_type() == at::kDouble),
              "native head_mean: X must be a contiguous float [N, H, F] tensor");
  c10::cuda::CUDAGuard guard(X.device());
  const int64_t N = X.size(0), H = X.size(1), F = X.size(2);
  check_vec(bias, F, X, "bias");
  Tensor Y = at::empty({N, F}, X.options());
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::head_mean<T>(X.data_ptr<T>(), ptr<T>(bias), Y.data_ptr<T>(), N, H, F, stream());
  });
  check_launch();
  return Y;
}

Tensor epilogue_bwd(Tensor Y, Tensor G, int64_t act, double p, int64_t seed, int64_t ctr) {
  check_rows(Y, "Y");
  check_cuda(G, "G");
  TORCH_CHECK(Y.is_contiguous() && G.is_contiguous() && Y.sizes() == G.sizes() && G.scalar_type() == Y.scalar_type(),
              "native epilogue_bwd: Y and G must be contiguous tensors of one shape and dtype");
  c10::cuda::CUDAGuard guard(Y.device());
  Tensor O = at::empty(Y.sizes(), Y.options());
  dispatch(Y, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::epilogue_bwd<T>(Y.data_ptr<T>(), G.data_ptr<T>(), O.data_ptr<T>(), Y.size(0), Y.size(1),
                               static_cast<int>(act), gnb::make_drop(p, seed, ctr), stream());
  });
  check_launch();
  return O;
}

Tensor csr_mm(Tensor rowptr, Tensor col, Tensor val, Tensor W, double p, int64_t seed, int64_t ctr) {
  check_index(rowptr, col);
  check_rows(W, "W");
  check_vec(val, col.numel(), W, "val");
  c10::cuda::CUDAGuard guard(W.device());
  const int64_t N = rowptr.size(0) - 1, Fo = W.size(1);
  Tensor Y = at::empty({N, Fo}, W.options());
  dispatch(W, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::csr_mm<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), val.data_ptr<T>(), W.data_ptr<T>(),
                         ld(W), Y.data_ptr<T>(), N, Fo, gnb::make_drop(p, seed, ctr), stream());
  });
  check_launch();
  return Y;
}

// (rowptr, col, val) unused here: on the GPU the CSC gives one output row per thread group, without atomics
Tensor csr_mm_tgrad(Tensor rowptr, Tensor col, Tensor val, Tensor cptr, Tensor crow, Tensor cperm, Tensor cval,
                    Tensor G, double p, int64_t seed, int64_t ctr) {
  check_index(cptr, crow);
  check_rows(G, "G");
  TORCH_CHECK(cperm.scalar_type() == at::kInt && cperm.is_contiguous() && cperm.numel() == crow.numel(),
              "native csr_mm_tgrad: cperm must be contiguous int32, one per non-zero");
  check_vec(cval, crow.numel(), G, "cval");
  TORCH_CHECK(G.size(0) == rowptr.size(0) - 1, "native csr_mm_tgrad: G rows != X rows");
  c10::cuda::CUDAGuard guard(G.device());
  const int64_t Fin = cptr.size(0) - 1, Fo = G.size(1);
  Tensor O = at::empty({Fin, Fo}, G.options());
  dispatch(G, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::csr_mm_tgrad<T>(cptr.data_ptr<int64_t>(), crow.data_ptr<int32_t>(), cperm.data_ptr<int32_t>(),
                               cval.data_ptr<T>(), G.data_ptr<T>(), ld(G), O.data_ptr<T>(), Fin, Fo,
                               gnb::make_drop(p, seed, ctr), stream());
  });
  check_launch();
  return O;
}

std::vector<Tensor> gat_fwd(Tensor rowptr, Tensor col, Tensor Hw, Tensor att_src, Tensor att_dst, double slope,
                            double p, int64_t seed, int64_t ctr) {
  check_index(rowptr, col);
  check_cuda(Hw, "Hw");
  TORCH_CHECK(Hw.dim() == 3 && Hw.is_contiguous(), "native gat: Hw must be contiguous [N,H,F]");
  c10::cuda::CUDAGuard guard(Hw.device());
  const int64_t N = rowptr.size(0) - 1, H = Hw.size(1), F = Hw.size(2), E = col.numel();
  TORCH_CHECK(Hw.size(0) == N, "native gat: Hw has ", Hw.size(0), " rows, the graph ", N);
  check_vec(att_src, H * F, Hw, "att_src");
  check_vec(att_dst, H * F, Hw, "att_dst");
  Tensor out = at::empty({N, H, F}, Hw.options());
  Tensor alpha = at::empty({E, H}, Hw.options());
  Tensor a_s = at::empty({N, H}, Hw.options());
  Tensor a_d = at::empty({N, H}, Hw.options());
  dispatch(Hw, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::gat_fwd<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), Hw.data_ptr<T>(),
                          att_src.data_ptr<T>(), att_dst.data_ptr<T>(), out.data_ptr<T>(), alpha.data_ptr<T>(),
                          a_s.data_ptr<T>(), a_d.data_ptr<T>(), N, H, F, static_cast<T>(slope),
                          gnb::make_drop(p, seed, ctr), stream());
  });
  check_launch();
  return {out, alpha, a_s, a_d};
}

std::vector<Tensor> gat_bwd(Tensor rowptr, Tensor col, Tensor trowptr, Tensor tcol, Tensor tpos, Tensor Hw,
                            Tensor att_src, Tensor att_dst, Tensor a_s, Tensor a_d, Tensor alpha, Tensor G,
                            double slope, double p, int64_t seed, int64_t ctr) {
  check_index(rowptr, col);
  check_index(trowptr, tcol);
  check_cuda(tpos, "tpos");
  TORCH_CHECK(tpos.scalar_type() == at::kInt && tpos.is_contiguous() && tpos.numel() == col.numel() &&
                  tcol.numel() == col.numel() && trowptr.numel() == rowptr.numel(),
              "native gat_bwd: transposed CSR does not match the graph");
  check_cuda(Hw, "Hw");
  TORCH_CHECK(Hw.dim() == 3 && Hw.is_contiguous(), "native gat_bwd: bad Hw");
  c10::cuda::CUDAGuard guard(Hw.device());
  const int64_t N = rowptr.size(0) - 1, H = Hw.size(1), F = Hw.size(2), E = col.numel();
  TORCH_CHECK(G.is_cuda() && G.is_contiguous() && G.sizes() == Hw.sizes() && G.scalar_type() == Hw.scalar_type(),
              "native gat_bwd: grad must be contiguous and shaped like Hw");
  check_vec(att_src, H * F, Hw, "att_src");
  check_vec(att_dst, H * F, Hw, "att_dst");
  check_vec(alpha, E * H, Hw, "alpha");
  check_vec(a_s, N * H, Hw, "a_s");
  check_vec(a_d, N * H, Hw, "a_d");
  Tensor dHw = at::empty(Hw.sizes(), Hw.options());
  Tensor scratch = at::empty({3 * E, H}, Hw.options());
  Tensor da_d = at::empty({N, H}, Hw.options());
  Tensor das = at::empty({H, F}, Hw.options());
  Tensor dad = at::empty({H, F}, Hw.options());
  dispatch(Hw, [&](auto z) {
    using T = decltype(z);
    gnb::cuda::gat_bwd<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), trowptr.data_ptr<int64_t>(),
                          tcol.data_ptr<int32_t>(), tpos.data_ptr<int32_t>(), Hw.data_ptr<T>(), att_src.data_ptr<T>(),
                          att_dst.data_ptr<T>(), a_s.data_ptr<T>(), a_d.data_ptr<T>(), alpha.data_ptr<T>(),
                          G.data_ptr<T>(), scratch.data_ptr<T>(), da_d.data_ptr<T>(), dHw.data_ptr<T>(),
                          das.data_ptr<T>(), dad.data_ptr<T>(), N, E, H, F, static_cast<T>(slope),
                          gnb::make_drop(p, seed, ctr), stream());
  });
  check_launch();
  return {dHw, das, dad};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gnnbench native CUDA kernels";
  m.def("spmm", &spmm, "Y = drop(act(A X + R + bias)) over a CSR graph");
  m.def("sddmm", &sddmm, "out[k] = <U[col[k]], V[row k]> per edge (general SDDMM)");
  m.def("epilogue", &epilogue, "Y = drop(act(X + bias))");
  m.def("head_mean", &head_mean, "Y = mean over heads of X[N,H,F] + bias");
  m.def("epilogue_bwd", &epilogue_bwd, "gradient wrt the pre-activation of epilogue/spmm");
  m.def("csr_mm", &csr_mm, "Y = drop_nnz(X_csr) @ W");
  m.def("csr_mm_tgrad", &csr_mm_tgrad, "dW = drop_nnz(X)^T @ G (X in CSR and CSC)");
  m.def("gat_fwd", &gat_fwd, "fused GAT attention forward");
  m.def("gat_bwd", &gat_bwd, "fused GAT attention backward");
}
