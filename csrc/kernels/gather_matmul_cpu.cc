// CPU gather matmul: y[g] = x[g] @ w[index[g]] (or @ w[index[g]]^T) reading the
// selected matrix in place. Work is split into (group, column tile) units over
// the threads; each output element is computed in registers and stored once.
// float32 uses the AVX-512 or AVX2 tiles when the CPU has them
// (NAS_TF_CPU_KERNEL=generic|avx2|avx512 forces a path); other types use the
// portable code with float32 (float64 for double) accumulation.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gather_matmul_cpu_arch.h"
#include "half.h"
#include "nas_tf_kernels.h"

namespace nas_tf {
namespace kernels {

namespace {

const ArchTiles* SelectArch() {
  const char* forced = std::getenv("NAS_TF_CPU_KERNEL");
  const std::string want = forced ? forced : "";
  if (want == "generic") return nullptr;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && Avx512Tiles() != nullptr;
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && Avx2Tiles() != nullptr;
  if (want == "avx2") return has2 ? Avx2Tiles() : nullptr;
  if (has512) return Avx512Tiles();
  if (has2) return Avx2Tiles();
#endif
  return nullptr;
}

const ArchTiles* Arch() {
  static const ArchTiles* arch = SelectArch();
  return arch;
}

template <typename T> struct Acc { typedef float type; };
template <> struct Acc<double> { typedef double type; };

constexpr int64_t kGenericTile = 64;

// Portable tiles: columns [c0, c1) of y[rows, :] = x @ w.
template <typename T>
void GenericTileNN(const T* x, int64_t ldx, const T* w, int64_t ldw, T* y, int64_t ldy, int64_t rows,
                   int64_t depth, int64_t c0, int64_t c1) {
  typedef typename Acc<T>::type A;
  A acc[kGenericTile];
  const int64_t cols = c1 - c0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) acc[c] = 0;
    for (int64_t k = 0; k < depth; ++k) {
      const A xs = static_cast<A>(ToFloat(x[r * ldx + k]));
      const T* wk = w + k * ldw + c0;
      for (int64_t c = 0; c < cols; ++c) acc[c] += xs * static_cast<A>(ToFloat(wk[c]));
    }
    for (int64_t c = 0; c < cols; ++c) y[r * ldy + c0 + c] = FromFloat<T>(static_cast<float>(acc[c]));
  }
}
template <>
void GenericTileNN<double>(const double* x, int64_t ldx, const double* w, int64_t ldw, double* y,
                           int64_t ldy, int64_t rows, int64_t depth, int64_t c0, int64_t c1) {
  double acc[kGenericTile];
  const int64_t cols = c1 - c0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) acc[c] = 0;
    for (int64_t k = 0; k < depth; ++k) {
      const double xs = x[r * ldx + k];
      const double* wk = w + k * ldw + c0;
      for (int64_t c = 0; c < cols; ++c) acc[c] += xs * wk[c];
    }
    for (int64_t c = 0; c < cols; ++c) y[r * ldy + c0 + c] = acc[c];
  }
}

// Rows [n0, n1) of w: y[r, n] = dot(x[r, :], w[n, :]).
template <typename T>
void GenericTileNT(const T* x, int64_t ldx, const T* w, int64_t ldw, T* y, int64_t ldy, int64_t rows,
                   int64_t depth, int64_t n0, int64_t n1) {
  typedef typename Acc<T>::type A;
  for (int64_t n = n0; n < n1; ++n) {
    const T* wn = w + n * ldw;
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * ldx;
      A acc = 0;
      for (int64_t k = 0; k < depth; ++k) acc += static_cast<A>(ToFloat(xr[k])) * static_cast<A>(ToFloat(wn[k]));
      y[r * ldy + n] = FromFloat<T>(static_cast<float>(acc));
    }
  }
}
template <>
void GenericTileNT<double>(const double* x, int64_t ldx, const double* w, int64_t ldw, double* y,
                           int64_t ldy, int64_t rows, int64_t depth, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (int64_t k = 0; k < depth; ++k) acc += x[r * ldx + k] * w[n * ldw + k];
      y[r * ldy + n] = acc;
    }
}

// From this batch on, y = x @ W^T runs as y^T = W @ x^T on the NN register
// tiles (x^T is small: one transpose per group), which beats dot-product tiles.
constexpr int64_t kTransposedNNMinBatch = 16;
constexpr double kParallelMinFlops = 16.0 * (1 << 20);
constexpr int64_t kRowsPerUnit = 64;
constexpr int64_t kTransposeBlock = 32;

// dst[c, r] = src[r, c] for r < rows, c < cols, in 16 x 16 blocks.
void Transpose(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t rows, int64_t cols) {
  constexpr int64_t kB = 16;
  for (int64_t r0 = 0; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB) {
      const int64_t r1 = std::min(rows, r0 + kB), c1 = std::min(cols, c0 + kB);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r) dst[c * ldd + r] = src[r * lds + c];
    }
}

void RunTransposedAsNN(const GatherMatmulShape& s, const float* x, const float* w, const int64_t* index,
                       float* y, const ParallelFor& threads, const ArchTiles* arch) {
  const int64_t G = s.groups, B = s.batch, N = s.in_dim, M = s.out_dim;
  const bool inline_only = 2.0 * G * B * N * M < kParallelMinFlops;
  auto parallel_for = [&](int64_t total, int64_t cost, const std::function<void(int64_t, int64_t)>& fn) {
    if (inline_only) fn(0, total);
    else threads(total, cost, fn);
  };
  // xt[g] = x[g]^T: [M, B].
  std::vector<float> xt(static_cast<size_t>(G * M * B));
  const int64_t mblocks = (M + kTransposeBlock - 1) / kTransposeBlock;
  parallel_for(G * mblocks, kTransposeBlock * B + 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t g = u / mblocks, m0 = (u % mblocks) * kTransposeBlock;
      Transpose(x + g * B * M + m0, M, xt.data() + g * M * B + m0 * B, B, B, std::min(kTransposeBlock, M - m0));
    }
  });
  const int64_t chunks = (N + kRowsPerUnit - 1) / kRowsPerUnit;
  const int64_t tile = arch->nn_tile;
  parallel_for(G * chunks, kRowsPerUnit * M * B / 4 + 1, [&](int64_t begin, int64_t end) {
    std::vector<float> out(static_cast<size_t>(kRowsPerUnit * B));
    for (int64_t u = begin; u < end; ++u) {
      const int64_t g = u / chunks, n0 = (u % chunks) * kRowsPerUnit;
      const int64_t rows = std::min(kRowsPerUnit, N - n0);
      const float* wn = w + index[g] * N * M + n0 * M;  // rows n0.. of the selected matrix, in place
      const float* xtg = xt.data() + g * M * B;
      for (int64_t c0 = 0; c0 < B; c0 += tile)  // out[r, b] = sum_m W[n0 + r, m] * x[b, m]
        arch->tile_nn(wn, M, xtg, B, out.data(), B, rows, M, c0, std::min(B, c0 + tile), nullptr);
      Transpose(out.data(), B, y + g * B * N + n0, N, rows, B);
    }
  });
}

template <typename T>
void Run(const GatherMatmulShape& s, const T* x, const T* w, const int64_t* index, T* y,
         const ParallelFor& parallel_for, const ArchTiles* arch) {
  const int64_t B = s.batch, N = s.in_dim, M = s.out_dim;
  const int64_t xc = s.x_cols(), yc = s.y_cols();
  if (s.groups == 0 || B == 0 || yc == 0) return;
  if (xc == 0) {  // empty inner dimension: y = 0
    std::memset(static_cast<void*>(y), 0, sizeof(T) * s.groups * B * yc);
    return;
  }
  if (arch != nullptr && s.transpose_weights && B >= kTransposedNNMinBatch &&
      2.0 * s.groups * B * N * M >= kParallelMinFlops) {
    RunTransposedAsNN(s, reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(w), index,
                      reinterpret_cast<float*>(y), parallel_for, arch);
    return;
  }
  const int64_t tile = arch ? (s.transpose_weights ? arch->nt_tile : arch->nn_tile) : kGenericTile;
  // Narrow outputs get smaller units so both cores have work.
  const int64_t tiles = (yc + tile - 1) / tile;
  const int64_t units = s.groups * tiles;
  const int64_t cost = B * xc * tile / 4 + 1;
  auto work = [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const int64_t g = u / tiles, t = u % tiles;
      const int64_t c0 = t * tile, c1 = std::min(yc, c0 + tile);
      const T* xg = x + g * B * xc;
      const T* wg = w + index[g] * N * M;
      T* yg = y + g * B * yc;
      if (arch != nullptr) {
        const float* xf = reinterpret_cast<const float*>(xg);
        const float* wf = reinterpret_cast<const float*>(wg);
        float* yf = reinterpret_cast<float*>(yg);
        if (s.transpose_weights) {
          arch->tile_nt(xf, M, wf, M, yf, N, B, M, c0, c1);
        } else {
          arch->tile_nn(xf, N, wf, M, yf, M, B, N, c0, c1, nullptr);
        }
      } else if (s.transpose_weights) {
        GenericTileNT(xg, M, wg, M, yg, N, B, M, c0, c1);
      } else {
        GenericTileNN(xg, N, wg, M, yg, M, B, N, c0, c1);
      }
    }
  };
  // Waking a second thread costs tens of microseconds: small products run inline.
  if (2.0 * s.groups * B * N * M < kParallelMinFlops) work(0, units);
  else parallel_for(units, cost, work);
}

}  // namespace

const char* GatherMatmulCpuPath() { return Arch() ? Arch()->name : "generic"; }

void GatherMatmulCpu(DType dtype, const GatherMatmulShape& s, const void* x, const void* weights,
                     const int64_t* index, void* y, const ParallelFor& parallel_for) {
  switch (dtype) {
    case DType::kFloat32:
      Run(s, static_cast<const float*>(x), static_cast<const float*>(weights), index,
          static_cast<float*>(y), parallel_for, Arch());
      break;
    case DType::kFloat64:
      Run(s, static_cast<const double*>(x), static_cast<const double*>(weights), index,
          static_cast<double*>(y), parallel_for, nullptr);
      break;
    case DType::kFloat16:
      Run(s, static_cast<const float16*>(x), static_cast<const float16*>(weights), index,
          static_cast<float16*>(y), parallel_for, nullptr);
      break;
    case DType::kBFloat16:
      Run(s, static_cast<const bfloat16*>(x), static_cast<const bfloat16*>(weights), index,
          static_cast<bfloat16*>(y), parallel_for, nullptr);
      break;
  }
}

}  // namespace kernels
}  // namespace nas_tf
