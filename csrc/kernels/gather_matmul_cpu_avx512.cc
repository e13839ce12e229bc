// AVX-512 float32 tiles of the CPU gather matmul (selected at run time only on
// CPUs that have AVX-512F; compiled for it with a target pragma, so the rest of
// the library keeps the baseline instruction set).
#include <cstdint>
#include <cstring>

#include "gather_matmul_cpu_arch.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12's own AVX-512 headers trip -Wuninitialized (_mm256_undefined_pd).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#endif

namespace nas_tf {
namespace kernels {
namespace avx512 {

typedef __m512 V;
constexpr int VW = 16;
constexpr int NN_MR = 8, NN_NV = 3;
constexpr int NT_XR = 4, NT_WR = 4;
static inline V Zero() { return _mm512_setzero_ps(); }
static inline V Set1(float f) { return _mm512_set1_ps(f); }
static inline V Load(const float* p) { return _mm512_loadu_ps(p); }
static inline __mmask16 Mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
static inline V LoadPartial(const float* p, int n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
static inline void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline void StorePartial(float* p, V v, int n) { _mm512_mask_storeu_ps(p, Mask(n), v); }
static inline V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline float HSum(V v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define NN_NV_MAX 3
#include "gather_matmul_cpu_impl.h"
#undef NN_NV_MAX

}  // namespace avx512

static const ArchTiles kAvx512 = {"avx512", avx512::NN_NV * avx512::VW, 16, &avx512::TileNN,
                                  &avx512::TileNT};
const ArchTiles* Avx512Tiles() { return &kAvx512; }

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
const ArchTiles* Avx512Tiles() { return nullptr; }
}  // namespace kernels
}  // namespace nas_tf
#endif
