// IEEE float16 and bfloat16 <-> float32 bit conversions (round to nearest even),
// for the portable CPU code paths. Layout-compatible with Eigen::half /
// Eigen::bfloat16 (a raw uint16).
#ifndef NAS_TF_CSRC_KERNELS_HALF_H_
#define NAS_TF_CSRC_KERNELS_HALF_H_

#include <cstdint>
#include <cstring>

namespace nas_tf {
namespace kernels {

struct float16 { uint16_t bits; };
struct bfloat16 { uint16_t bits; };

static inline float BitsToFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline uint32_t FloatToBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

static inline float ToFloat(float v) { return v; }
static inline double ToFloat(double v) { return v; }
static inline float ToFloat(bfloat16 v) { return BitsToFloat(static_cast<uint32_t>(v.bits) << 16); }
static inline float ToFloat(float16 v) {
  const uint32_t h = v.bits;
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return BitsToFloat(sign);
    // subnormal: value = mant * 2^-24
    float f = static_cast<float>(mant) * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  return BitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

template <typename T> static inline T FromFloat(float f);
template <> inline float FromFloat<float>(float f) { return f; }
template <> inline bfloat16 FromFloat<bfloat16>(float f) {
  uint32_t u = FloatToBits(f);
  bfloat16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) { r.bits = static_cast<uint16_t>((u >> 16) | 0x40); return r; }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.bits = static_cast<uint16_t>(u >> 16);
  return r;
}
template <> inline float16 FromFloat<float16>(float f) {
  // Round-to-nearest-even float -> half (handles subnormals, overflow, nan).
  uint32_t x = FloatToBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  float16 r;
  if (x >= 0x7f800000u) {  // inf or nan
    r.bits = static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
    return r;
  }
  if (x >= 0x477ff000u) {  // rounds to >= 65520 -> inf
    r.bits = static_cast<uint16_t>(sign | 0x7c00u);
    return r;
  }
  if (x < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    // value * 2^24 rounded to nearest even integer, done in float arithmetic.
    float v = BitsToFloat(x) + 0.5f;  // 0.5 = 2^-1: aligns the half subnormal ulp (2^-24) to float's ulp
    r.bits = static_cast<uint16_t>(sign | (FloatToBits(v) - 0x3f000000u));
    return r;
  }
  const uint32_t mant_odd = (x >> 13) & 1u;
  x += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round
  r.bits = static_cast<uint16_t>(sign | (x >> 13));
  return r;
}
template <> inline double FromFloat<double>(float f) { return f; }

}  // namespace kernels
}  // namespace nas_tf

#endif  // NAS_TF_CSRC_KERNELS_HALF_H_
