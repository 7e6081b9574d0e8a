// Uniform neighbour sampling without replacement for mini-batch GraphSAGE (CPU, OpenMP).
//
// One layer: for each destination (seed) node, min(deg, fanout) of its neighbours, chosen by
// reservoir sampling driven by the counter-based generator of rng.h (key from seed and ctr,
// element index = (node, position)), so a (seed, ctr) pair always samples the same block.
// Output is the block in the kernels' layout: CSR by destination over local source ids (the
// destinations are the first source ids, as DGL's blocks order them), the list of source
// nodes (global ids), and the transposed CSR (by source) with the permutation between them.
#include <algorithm>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "kernels.h"

namespace gnb {
namespace cpu {

void sample_layer(const int64_t* rowptr, const int32_t* col, const int64_t* seeds, int64_t n_seeds, int64_t fanout,
                  uint64_t key, int32_t* pos, SampledBlock& out) {
  out.rowptr.assign(n_seeds + 1, 0);
  for (int64_t i = 0; i < n_seeds; ++i) {
    const int64_t deg = rowptr[seeds[i] + 1] - rowptr[seeds[i]];
    out.rowptr[i + 1] = out.rowptr[i] + (fanout < 0 ? deg : std::min(deg, fanout));
  }
  const int64_t nnz = out.rowptr[n_seeds];
  std::vector<int64_t> picked(nnz);
#pragma omp parallel for schedule(dynamic, 256) if (nnz > 16384)
  for (int64_t i = 0; i < n_seeds; ++i) {
    const int64_t s = seeds[i], beg = rowptr[s], deg = rowptr[s + 1] - beg;
    int64_t* o = picked.data() + out.rowptr[i];
    const int64_t k = out.rowptr[i + 1] - out.rowptr[i];
    for (int64_t j = 0; j < k; ++j) o[j] = col[beg + j];
    for (int64_t j = k; j < deg; ++j) {   // reservoir (Algorithm R): only when deg > fanout
      const uint64_t r = (static_cast<uint64_t>(rand32(key, static_cast<uint64_t>(s) * 0x100000000ULL + j)) *
                          static_cast<uint64_t>(j + 1)) >> 32;   // uniform in [0, j]
      if (static_cast<int64_t>(r) < k) o[r] = col[beg + j];
    }
  }
  // relabel: the destinations first, then new source nodes in order of appearance
  out.src_nodes.assign(seeds, seeds + n_seeds);
  for (int64_t i = 0; i < n_seeds; ++i) pos[seeds[i]] = static_cast<int32_t>(i);
  out.col.resize(nnz);
  for (int64_t e = 0; e < nnz; ++e) {
    const int64_t g = picked[e];
    if (pos[g] < 0) {
      pos[g] = static_cast<int32_t>(out.src_nodes.size());
      out.src_nodes.push_back(g);
    }
    out.col[e] = pos[g];
  }
  for (int64_t g : out.src_nodes) pos[g] = -1;
  // transpose (counting sort by source); tperm[t] = position in the by-destination order
  const int64_t n_src = static_cast<int64_t>(out.src_nodes.size());
  out.trowptr.assign(n_src + 1, 0);
  for (int64_t e = 0; e < nnz; ++e) ++out.trowptr[out.col[e] + 1];
  for (int64_t v = 0; v < n_src; ++v) out.trowptr[v + 1] += out.trowptr[v];
  std::vector<int64_t> fill(out.trowptr.begin(), out.trowptr.end() - 1);
  out.tcol.resize(nnz);
  out.tperm.resize(nnz);
  for (int64_t i = 0; i < n_seeds; ++i) {
    for (int64_t e = out.rowptr[i]; e < out.rowptr[i + 1]; ++e) {
      const int64_t t = fill[out.col[e]]++;
      out.tcol[t] = static_cast<int32_t>(i);
      out.tperm[t] = e;
    }
  }
}

}  // namespace cpu
}  // namespace gnb
