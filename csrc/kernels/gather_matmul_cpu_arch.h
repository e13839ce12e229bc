// Internal interface between the gather-matmul dispatcher and the per-
// architecture float32 tiles (gather_matmul_cpu_avx512.cc, _avx2.cc).
#ifndef NAS_TF_CSRC_KERNELS_GATHER_MATMUL_CPU_ARCH_H_
#define NAS_TF_CSRC_KERNELS_GATHER_MATMUL_CPU_ARCH_H_

#include <cstdint>

namespace nas_tf {
namespace kernels {

struct ArchTiles {
  const char* name;
  int64_t nn_tile;  // columns of y per NN tile
  int64_t nt_tile;  // suggested rows of w per NT unit
  void (*tile_nn)(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy,
                  int64_t rows, int64_t depth, int64_t col_begin, int64_t col_end, float* pack);
  void (*tile_nt)(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy,
                  int64_t rows, int64_t depth, int64_t n_begin, int64_t n_end);
};

// nullptr when the architecture is not compiled in (non-x86 or old compiler).
const ArchTiles* Avx512Tiles();
const ArchTiles* Avx2Tiles();

}  // namespace kernels
}  // namespace nas_tf

#endif  // NAS_TF_CSRC_KERNELS_GATHER_MATMUL_CPU_ARCH_H_
