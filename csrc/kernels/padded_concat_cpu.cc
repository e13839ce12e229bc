// Multithreaded CPU padded concatenation: one pass, every output byte written
// once (copied from its input or zeroed), rows of the output shared out over
// the threads.
#include <algorithm>
#include <cstring>

#include "nas_tf_kernels.h"

namespace nas_tf {
namespace kernels {

namespace {

// Copies `bytes` bytes; small fixed sizes get inlined copies.
inline void CopyBytes(char* dst, const char* src, int64_t bytes) { std::memcpy(dst, src, bytes); }

}  // namespace

void PaddedConcatForwardCpu(const PaddedConcatShape& s, const void* const* inputs,
                            const uint8_t* mask, void* output, const ParallelFor& parallel_for) {
  const int n = s.num_inputs();
  const int64_t es = s.elem_size;
  const int64_t rows = s.batch * s.out_height;
  if (s.output_elements() == 0) return;
  char* out = static_cast<char*>(output);
  const int64_t row_bytes = s.out_width * s.out_channels * es;
  std::vector<uint8_t> on(n);
  for (int i = 0; i < n; ++i) on[i] = mask == nullptr || mask[i] != 0;

  auto work = [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / s.out_height, h = r % s.out_height;
      char* dst_row = out + r * row_bytes;
      if (n == 1) {  // a single input: its row, then zeros
        const int64_t valid = (on[0] && h < s.height[0]) ? s.width[0] * s.channels[0] * es : 0;
        if (valid > 0) {
          const char* src = static_cast<const char*>(inputs[0]) + ((b * s.height[0] + h) * s.width[0]) * s.channels[0] * es;
          CopyBytes(dst_row, src, valid);
        }
        std::memset(dst_row + valid, 0, row_bytes - valid);
        continue;
      }
      const int64_t pixel_bytes = s.out_channels * es;
      for (int64_t w = 0; w < s.out_width; ++w) {
        char* dst = dst_row + w * pixel_bytes;
        for (int i = 0; i < n; ++i) {
          const int64_t c_bytes = s.channels[i] * es;
          if (c_bytes == 0) continue;
          char* d = dst + s.channel_offset[i] * es;
          if (on[i] && h < s.height[i] && w < s.width[i]) {
            const char* src = static_cast<const char*>(inputs[i]) +
                              (((b * s.height[i] + h) * s.width[i] + w) * s.channels[i]) * es;
            CopyBytes(d, src, c_bytes);
          } else {
            std::memset(d, 0, c_bytes);
          }
        }
      }
    }
  };
  parallel_for(rows, std::max<int64_t>(1, row_bytes / 4), work);
}

void PaddedConcatBackwardCpu(const PaddedConcatShape& s, const void* grad_output,
                             const uint8_t* mask, void* const* grad_inputs,
                             const ParallelFor& parallel_for) {
  const int n = s.num_inputs();
  const int64_t es = s.elem_size;
  const char* g = static_cast<const char*>(grad_output);
  const int64_t pixel_bytes = s.out_channels * es;
  // One unit = one row (b, h) of one input; units of all inputs together.
  std::vector<int64_t> first_unit(n + 1, 0);
  for (int i = 0; i < n; ++i) first_unit[i + 1] = first_unit[i] + s.batch * s.height[i];
  const int64_t total = first_unit[n];
  if (total == 0) return;
  int64_t max_row_bytes = 1;
  for (int i = 0; i < n; ++i) max_row_bytes = std::max(max_row_bytes, s.width[i] * s.channels[i] * es);
  auto work = [&](int64_t begin, int64_t end) {
    int i = static_cast<int>(std::upper_bound(first_unit.begin(), first_unit.end(), begin) - first_unit.begin()) - 1;
    for (int64_t u = begin; u < end; ++u) {
      while (u >= first_unit[i + 1]) ++i;
      const int64_t r = u - first_unit[i];
      const int64_t b = r / s.height[i], h = r % s.height[i];
      const int64_t c_bytes = s.channels[i] * es;
      char* dst = static_cast<char*>(grad_inputs[i]) + r * s.width[i] * c_bytes;
      if (mask != nullptr && mask[i] == 0) {
        std::memset(dst, 0, s.width[i] * c_bytes);
        continue;
      }
      if (c_bytes == 0) continue;
      const char* src = g + ((b * s.out_height + h) * s.out_width) * pixel_bytes + s.channel_offset[i] * es;
      if (n == 1) {
        CopyBytes(dst, src, s.width[i] * c_bytes);
        continue;
      }
      for (int64_t w = 0; w < s.width[i]; ++w) CopyBytes(dst + w * c_bytes, src + w * pixel_bytes, c_bytes);
    }
  };
  parallel_for(total, std::max<int64_t>(1, max_row_bytes / 4), work);
}

}  // namespace kernels
}  // namespace nas_tf
