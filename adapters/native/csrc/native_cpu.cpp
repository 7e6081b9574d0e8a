// torch bindings of the CPU kernels (cpu_kernels.cpp): argument checks,
// output allocation, float/double dispatch.  Light headers on purpose: this
// file dominates the compile time.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <unordered_map>
#include <vector>

#include "kernels.h"

using at::Tensor;
using gnb::Drop;
using OptT = std::optional<Tensor>;

namespace {

int64_t ld(const Tensor& t) { return t.dim() == 2 ? t.stride(0) : t.size(-1); }

void check_index(const Tensor& rowptr, const Tensor& col) {
  TORCH_CHECK(rowptr.device().is_cpu() && col.device().is_cpu(), "native cpu: index tensors must be on the CPU");
  TORCH_CHECK(rowptr.scalar_type() == at::kLong && rowptr.is_contiguous() && rowptr.dim() == 1 && rowptr.numel() >= 1,
              "native: rowptr must be a contiguous 1-D int64 tensor");
  TORCH_CHECK(col.scalar_type() == at::kInt && col.is_contiguous(), "native: col must be contiguous int32");
}

void check_rows(const Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), "native cpu: ", name, " must be on the CPU");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "native: ", name,
              " must be float32 or float64");
  TORCH_CHECK(x.dim() == 2, "native: ", name, " must be 2-D");
  TORCH_CHECK(x.stride(1) == 1 || x.size(1) <= 1, "native: ", name, " rows must be contiguous");
}

void check_vec(const OptT& v, int64_t n, const Tensor& like, const char* name) {
  if (!v) return;
  TORCH_CHECK(v->device().is_cpu() && v->is_contiguous() && v->numel() == n && v->scalar_type() == like.scalar_type(),
              "native: ", name, " must be a contiguous CPU tensor of ", n, " elements and dtype ", like.scalar_type());
}

template <typename F>
void dispatch(const Tensor& t, F&& fn) {
  if (t.scalar_type() == at::kFloat) fn(float{});
  else if (t.scalar_type() == at::kDouble) fn(double{});
  else TORCH_CHECK(false, "native: unsupported dtype ", t.scalar_type());
}

template <typename T>
const T* ptr(const OptT& t) { return t ? t->data_ptr<T>() : nullptr; }

#if defined(GNB_MASKED)
// The verify build: every active dropout site reads the mask the harness injected for its counter
// offset (ctr mod period: the site within a training step), as 0xFFFFFFFF (kept) / 0 (dropped) draws
// in the kernel's own element order; a site without one is an error, never a silent hash.
std::unordered_map<int64_t, Tensor> g_masks;
int64_t g_period = 1;

void set_masks(std::unordered_map<int64_t, Tensor> masks, int64_t period) {
  TORCH_CHECK(period >= 1, "native set_masks: period must be >= 1");
  for (auto& kv : masks)
    TORCH_CHECK(kv.second.scalar_type() == at::kInt && kv.second.is_contiguous() && kv.second.device().is_cpu(),
                "native set_masks: masks must be contiguous int32 CPU tensors");
  g_masks = std::move(masks);
  g_period = period;
}

Drop site_drop(double p, int64_t seed, int64_t ctr, int64_t n) {
  Drop d = gnb::make_drop(p, seed, ctr);
  if (!d.active || d.all) return d;
  const int64_t off = ((ctr % g_period) + g_period) % g_period;
  auto it = g_masks.find(off);
  TORCH_CHECK(it != g_masks.end(), "native verify build: dropout site at counter offset ", off,
              " has no injected mask");
  TORCH_CHECK(it->second.numel() == n, "native verify build: mask of counter offset ", off, " has ",
              it->second.numel(), " elements, the kernel draws ", n);
  d.bits = reinterpret_cast<const uint32_t*>(it->second.data_ptr<int32_t>());
  return d;
}
#else
Drop site_drop(double p, int64_t seed, int64_t ctr, int64_t) { return gnb::make_drop(p, seed, ctr); }
#endif

Tensor spmm(Tensor rowptr, Tensor col, OptT val, Tensor X, OptT R, OptT bias, int64_t act, double p, int64_t seed,
            int64_t ctr, OptT out) {
  check_index(rowptr, col);
  check_rows(X, "X");
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
                       static_cast<int>(act), site_drop(p, seed, ctr, N * F)};
    gnb::cpu::spmm<T>(a);
  });
  return Y;
}

Tensor sddmm(Tensor rowptr, Tensor col, Tensor U, Tensor V) {
  check_index(rowptr, col);
  check_rows(U, "U");
  check_rows(V, "V");
  const int64_t N = rowptr.size(0) - 1, F = U.size(1);
  TORCH_CHECK(V.size(0) == N && V.size(1) == F && U.scalar_type() == V.scalar_type(), "native sddmm: bad V");
  Tensor out = at::empty({col.numel()}, U.options());
  dispatch(U, [&](auto z) {
    using T = decltype(z);
    gnb::cpu::sddmm<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), U.data_ptr<T>(), ld(U), V.data_ptr<T>(),
                       ld(V), out.data_ptr<T>(), N, F);
  });
  return out;
}

// Y = X @ W for the skinny shapes skinny_mm handles; None otherwise (the caller uses torch.mm)
std::optional<Tensor> skinny_mm(Tensor X, Tensor W) {
  check_rows(X, "X");
  TORCH_CHECK(W.dim() == 2 && W.is_contiguous() && W.device().is_cpu() && W.size(0) == X.size(1) &&
                  W.scalar_type() == X.scalar_type(),
              "native skinny_mm: W must be a contiguous [K, M] CPU tensor of X's dtype");
  const int64_t N = X.size(0), K = X.size(1), M = W.size(1);
  Tensor Y = at::empty({N, M}, X.options());
  bool ok = false;
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    ok = gnb::cpu::skinny_mm<T>(X.data_ptr<T>(), ld(X), W.data_ptr<T>(), Y.data_ptr<T>(), N, K, M);
  });
  if (!ok) return std::nullopt;
  return Y;
}

// X^T @ G for the same shapes; None otherwise
std::optional<Tensor> skinny_tgrad(Tensor X, Tensor G) {
  check_rows(X, "X");
  TORCH_CHECK(G.dim() == 2 && G.is_contiguous() && G.device().is_cpu() && G.size(0) == X.size(0) &&
                  G.scalar_type() == X.scalar_type(),
              "native skinny_tgrad: G must be a contiguous [N, M] CPU tensor of X's dtype");
  const int64_t N = X.size(0), K = X.size(1), M = G.size(1);
  Tensor O = at::empty({K, M}, X.options());
  bool ok = false;
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    ok = gnb::cpu::skinny_tgrad<T>(X.data_ptr<T>(), ld(X), G.data_ptr<T>(), O.data_ptr<T>(), N, K, M);
  });
  if (!ok) return std::nullopt;
  return O;
}

Tensor epilogue(Tensor X, OptT bias, int64_t act, double p, int64_t seed, int64_t ctr) {
  check_rows(X, "X");
  const int64_t N = X.size(0), F = X.size(1);
  check_vec(bias, F, X, "bias");
  Tensor Y = at::empty({N, F}, X.options());
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    gnb::cpu::epilogue<T>(X.data_ptr<T>(), ld(X), ptr<T>(bias), Y.data_ptr<T>(), N, F, static_cast<int>(act),
                          site_drop(p, seed, ctr, N * F));
  });
  return Y;
}

Tensor head_mean(Tensor X, OptT bias) {
  TORCH_CHECK(X.dim() == 3 && X.is_contiguous() && X.device().is_cpu() &&
                  (X.scalar_type() == at::kFloat || X.scalar_type() == at::kDouble),
              "native head_mean: X must be a contiguous float [N, H, F] CPU tensor");
  const int64_t N = X.size(0), H = X.size(1), F = X.size(2);
  check_vec(bias, F, X, "bias");
  Tensor Y = at::empty({N, F}, X.options());
  dispatch(X, [&](auto z) {
    using T = decltype(z);
    gnb::cpu::head_mean<T>(X.data_ptr<T>(), ptr<T>(bias), Y.data_ptr<T>(), N, H, F);
  });
  return Y;
}

Tensor epilogue_bwd(Tensor Y, Tensor G, int64_t act, double p, int64_t seed, int64_t ctr) {
  check_rows(Y, "Y");
  TORCH_CHECK(Y.is_contiguous() && G.is_contiguous() && Y.sizes() == G.sizes() && G.scalar_type() == Y.scalar_type()
                  && G.device().is_cpu(),
              "native epilogue_bwd: Y and G must be contiguous CPU tensors of one shape and dtype");
  Tensor O = at::empty(Y.sizes(), Y.options());
  dispatch(Y, [&](auto z) {
    using T = decltype(z);
    gnb::cpu::epilogue_bwd<T>(Y.data_ptr<T>(), G.data_ptr<T>(), O.data_ptr<T>(), Y.size(0), Y.size(1),
                              static_cast<int>(act), site_drop(p, seed, ctr, Y.numel()));
  });
  return O;
}

Tensor csr_mm(Tensor rowptr, Tensor col, Tensor val, Tensor W, double p, int64_t seed, int64_t ctr) {
  check_index(rowptr, col);
  check_rows(W, "W");
  check_vec(val, col.numel(), W, "val");
  TORCH_CHECK(rowptr.data_ptr<int64_t>()[rowptr.numel() - 1] == col.numel(), "native csr_mm: rowptr[-1] != nnz");
  const int64_t N = rowptr.size(0) - 1, Fo = W.size(1);
  Tensor Y = at::empty({N, Fo}, W.options());
  dispatch(W, [&](auto z) {
    using T = decltype(z);
    gnb::cpu::csr_mm<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), val.data_ptr<T>(), W.data_ptr<T>(),
                        ld(W), Y.data_ptr<T>(), N, Fo, site_drop(p, seed, ctr, col.numel()));
  });
  return Y;
}

// dW = drop_nnz(X)^T @ G.  mode 0 picks: X's CSC (gathers rows of G, no reduction)
// while G is small enough to stay in cache (<= 1 MiB) or the per-thread
// accumulators would be large (> 64 MiB together); else X's CSR, reading G in
// order into per-thread [Fin, Fo] accumulators.  1 / 2 force CSR / CSC (tests).
Tensor csr_mm_tgrad(Tensor rowptr, Tensor col, Tensor val, Tensor cptr, Tensor crow, Tensor cperm, Tensor cval,
                    Tensor G, double p, int64_t seed, int64_t ctr, int64_t mode) {
  check_index(rowptr, col);
  check_index(cptr, crow);
  check_rows(G, "G");
  check_vec(val, col.numel(), G, "val");
  TORCH_CHECK(cperm.scalar_type() == at::kInt && cperm.is_contiguous() && cperm.numel() == crow.numel(),
              "native csr_mm_tgrad: cperm must be contiguous int32, one per non-zero");
  check_vec(cval, crow.numel(), G, "cval");
  const int64_t N = rowptr.size(0) - 1, Fin = cptr.size(0) - 1, Fo = G.size(1);
  TORCH_CHECK(G.size(0) == N, "native csr_mm_tgrad: G has ", G.size(0), " rows, X ", N);
  Tensor O = at::empty({Fin, Fo}, G.options());
  const Drop d = site_drop(p, seed, ctr, col.numel());
  const double acc_bytes = static_cast<double>(gnb::cpu::max_threads() - 1) * Fin * Fo * G.element_size();
  dispatch(G, [&](auto z) {
    using T = decltype(z);
    const double g_bytes = static_cast<double>(N) * Fo * G.element_size();
    const bool rows = mode == 1 || (mode == 0 && g_bytes > (1 << 20) && acc_bytes <= 64.0 * (1 << 20));
    if (rows)
      gnb::cpu::csr_mm_tgrad_rows<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), val.data_ptr<T>(),
                                     G.data_ptr<T>(), ld(G), O.data_ptr<T>(), N, Fin, Fo, d);
    else
      gnb::cpu::csr_mm_tgrad<T>(cptr.data_ptr<int64_t>(), crow.data_ptr<int32_t>(), cperm.data_ptr<int32_t>(),
                                cval.data_ptr<T>(), G.data_ptr<T>(), ld(G), O.data_ptr<T>(), Fin, Fo, d);
  });
  return O;
}

std::vector<Tensor> gat_fwd(Tensor rowptr, Tensor col, Tensor Hw, Tensor att_src, Tensor att_dst, double slope,
                            double p, int64_t seed, int64_t ctr) {
  check_index(rowptr, col);
  TORCH_CHECK(Hw.dim() == 3 && Hw.is_contiguous() && Hw.device().is_cpu(), "native gat: Hw must be contiguous [N,H,F]");
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
    gnb::cpu::gat_fwd<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), Hw.data_ptr<T>(), att_src.data_ptr<T>(),
                         att_dst.data_ptr<T>(), out.data_ptr<T>(), alpha.data_ptr<T>(), a_s.data_ptr<T>(),
                         a_d.data_ptr<T>(), N, H, F, static_cast<T>(slope), site_drop(p, seed, ctr, E * H));
  });
  return {out, alpha, a_s, a_d};
}

std::vector<Tensor> gat_bwd(Tensor rowptr, Tensor col, Tensor trowptr, Tensor tcol, Tensor tpos, Tensor Hw,
                            Tensor att_src, Tensor att_dst, Tensor a_s, Tensor a_d, Tensor alpha, Tensor G,
                            double slope, double p, int64_t seed, int64_t ctr) {
  check_index(rowptr, col);
  check_index(trowptr, tcol);
  TORCH_CHECK(tpos.scalar_type() == at::kInt && tpos.is_contiguous() && tpos.numel() == col.numel() &&
                  tcol.numel() == col.numel() && trowptr.numel() == rowptr.numel(),
              "native gat_bwd: transposed CSR does not match the graph");
  TORCH_CHECK(Hw.dim() == 3 && Hw.is_contiguous() && Hw.device().is_cpu(), "native gat_bwd: bad Hw");
  const int64_t N = rowptr.size(0) - 1, H = Hw.size(1), F = Hw.size(2), E = col.numel();
  TORCH_CHECK(G.is_contiguous() && G.sizes() == Hw.sizes() && G.scalar_type() == Hw.scalar_type(),
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
    gnb::cpu::gat_bwd<T>(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), trowptr.data_ptr<int64_t>(),
                         tcol.data_ptr<int32_t>(), tpos.data_ptr<int32_t>(), Hw.data_ptr<T>(), att_src.data_ptr<T>(),
                         att_dst.data_ptr<T>(), a_s.data_ptr<T>(), a_d.data_ptr<T>(), alpha.data_ptr<T>(),
                         G.data_ptr<T>(), scratch.data_ptr<T>(), da_d.data_ptr<T>(), dHw.data_ptr<T>(), das.data_ptr<T>(),
                         dad.data_ptr<T>(), N, H, F, static_cast<T>(slope), site_drop(p, seed, ctr, E * H));
  });
  return {dHw, das, dad};
}

// The raw generator, for tests: the u32 draws of indices [0, n) under (seed, ctr).
Tensor rand_u32(int64_t n, int64_t seed, int64_t ctr) {
  Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  const uint64_t key = gnb::make_key(static_cast<uint64_t>(seed), static_cast<uint64_t>(ctr));
  for (int64_t i = 0; i < n; ++i) o[i] = gnb::rand32(key, static_cast<uint64_t>(i));
  return out;
}

}  // namespace

namespace {
template <typename T>
Tensor to_tensor(const std::vector<T>& v, at::ScalarType type) {
  Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::TensorOptions().dtype(type));
  std::copy(v.begin(), v.end(), t.data_ptr<T>());
  return t;
}
}  // namespace

std::vector<Tensor> sample_layer(Tensor rowptr, Tensor col, Tensor seeds, int64_t fanout, int64_t seed, int64_t ctr,
                                 Tensor pos) {
  check_index(rowptr, col);
  TORCH_CHECK(seeds.scalar_type() == at::kLong && seeds.is_contiguous() && seeds.dim() == 1,
              "native sample_layer: seeds must be a contiguous 1-D int64 tensor");
  TORCH_CHECK(pos.scalar_type() == at::kInt && pos.is_contiguous() && pos.numel() == rowptr.numel() - 1,
              "native sample_layer: pos must be int32 with one entry per node");
  gnb::cpu::SampledBlock b;
  gnb::cpu::sample_layer(rowptr.data_ptr<int64_t>(), col.data_ptr<int32_t>(), seeds.data_ptr<int64_t>(),
                         seeds.numel(), fanout, gnb::make_key(static_cast<uint64_t>(seed), static_cast<uint64_t>(ctr)),
                         pos.data_ptr<int32_t>(), b);
  return {to_tensor(b.rowptr, at::kLong), to_tensor(b.col, at::kInt), to_tensor(b.src_nodes, at::kLong),
          to_tensor(b.trowptr, at::kLong), to_tensor(b.tcol, at::kInt), to_tensor(b.tperm, at::kLong)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gnnbench native CPU kernels";
  m.def("spmm", &spmm, "Y = drop(act(A X + R + bias)) over a CSR graph");
  m.def("sddmm", &sddmm, "out[k] = <U[col[k]], V[row k]> per edge (general SDDMM)");
  m.def("skinny_mm", &skinny_mm, "X @ W for skinny shapes (None when not handled)");
  m.def("skinny_tgrad", &skinny_tgrad, "X^T @ G for skinny shapes (None when not handled)");
  m.def("epilogue", &epilogue, "Y = drop(act(X + bias))");
  m.def("head_mean", &head_mean, "Y = mean over heads of X[N,H,F] + bias");
  m.def("epilogue_bwd", &epilogue_bwd, "gradient wrt the pre-activation of epilogue/spmm");
  m.def("csr_mm", &csr_mm, "Y = drop_nnz(X_csr) @ W");
  m.def("csr_mm_tgrad", &csr_mm_tgrad, "dW = drop_nnz(X)^T @ G (X in CSR and CSC; mode 0 auto, 1 CSR, 2 CSC)",
        pybind11::arg("rowptr"), pybind11::arg("col"), pybind11::arg("val"), pybind11::arg("cptr"),
        pybind11::arg("crow"), pybind11::arg("cperm"), pybind11::arg("cval"), pybind11::arg("G"), pybind11::arg("p"),
        pybind11::arg("seed"), pybind11::arg("ctr"), pybind11::arg("mode") = 0);
  m.def("gat_fwd", &gat_fwd, "fused GAT attention forward");
  m.def("gat_bwd", &gat_bwd, "fused GAT attention backward");
  m.def("rand_u32", &rand_u32, "counter-based generator output (tests)");
  m.def("num_threads", &gnb::cpu::max_threads, "OpenMP threads the kernels use");
  m.def("sample_layer", &sample_layer, "one layer of uniform neighbour sampling without replacement (a block)");
#if defined(GNB_MASKED)
  m.attr("masked") = true;
  m.def("set_masks", &set_masks, "verify build: inject dropout draws per counter offset (ctr mod period)");
#else
  m.attr("masked") = false;
#endif
}
