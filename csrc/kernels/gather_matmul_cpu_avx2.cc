// AVX2 + FMA float32 tiles of the CPU gather matmul (selected at run time only on
// CPUs that have AVX2 and FMA; compiled for it with a target pragma, so the rest of
// the library keeps the baseline instruction set).
#include <cstdint>
#include <cstring>

#include "gather_matmul_cpu_arch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace nas_tf {
namespace kernels {
namespace avx2 {

typedef __m256 V;
constexpr int VW = 8;
constexpr int NN_MR = 6, NN_NV = 2;
constexpr int NT_XR = 3, NT_WR = 3;
static inline V Zero() { return _mm256_setzero_ps(); }
static inline V Set1(float f) { return _mm256_set1_ps(f); }
static inline V Load(const float* p) { return _mm256_loadu_ps(p); }
static inline __m256i Mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline V LoadPartial(const float* p, int n) { return _mm256_maskload_ps(p, Mask(n)); }
static inline void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
static inline void StorePartial(float* p, V v, int n) { _mm256_maskstore_ps(p, Mask(n), v); }
static inline V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline float HSum(V v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define NN_NV_MAX 2
#include "gather_matmul_cpu_impl.h"
#undef NN_NV_MAX

}  // namespace avx2

static const ArchTiles kAvx2 = {"avx2", avx2::NN_NV * avx2::VW, 16, &avx2::TileNN,
                                  &avx2::TileNT};
const ArchTiles* Avx2Tiles() { return &kAvx2; }

}  // namespace kernels
}  // namespace nas_tf

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
namespace nas_tf {
namespace kernels {
const ArchTiles* Avx2Tiles() { return nullptr; }
}  // namespace kernels
}  // namespace nas_tf
#endif
