// Framework-free kernels of nas_tf: zero-padded channel concatenation and the
// shared-weight gather matmul. No TensorFlow or CUDA header is needed here: the
// TensorFlow op library (csrc/tf/) and the pybind11 module (csrc/python/) both
// call these functions.
//
// Layouts (row-major, C order):
//   padded concat: inputs [B, H_i, W_i, C_i] -> output [B, max H, max W, sum C]
//                  (top-left corner kept, zeros at the bottom and right).
//   gather matmul: x [G, B, N], weights [K, N, M], index [G] -> y [G, B, M],
//                  y[g] = x[g] @ weights[index[g]]; with transpose_weights
//                  x [G, B, M] -> y [G, B, N], y[g] = x[g] @ weights[index[g]]^T.
#ifndef NAS_TF_CSRC_KERNELS_NAS_TF_KERNELS_H_
#define NAS_TF_CSRC_KERNELS_NAS_TF_KERNELS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

typedef struct CUstream_st* cudaStream_t;

namespace nas_tf {
namespace kernels {

// Runs work(begin, end) over [0, total) in parallel; cost_per_unit is a rough
// number of CPU cycles per unit so an implementation can pick the grain.
using ParallelFor = std::function<void(int64_t total, int64_t cost_per_unit,
                                       const std::function<void(int64_t, int64_t)>& work)>;

// A ParallelFor on plain std::threads (num_threads <= 0: the hardware count).
ParallelFor StdThreadParallelFor(int num_threads);

// Element types of the arithmetic kernels.
enum class DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };
int DTypeSize(DType dtype);
const char* DTypeName(DType dtype);

// ---------------------------------------------------------------- padded concat
struct PaddedConcatShape {
  int64_t batch = 0;
  int64_t out_height = 0;
  int64_t out_width = 0;
  int64_t out_channels = 0;  // sum of channels
  std::vector<int64_t> height, width, channels, channel_offset;
  int elem_size = 4;  // bytes per element; the copy kernels do not care about the type
  int num_inputs() const { return static_cast<int>(height.size()); }
  int64_t output_elements() const { return batch * out_height * out_width * out_channels; }
};

// Fills out_height/out_width/out_channels/channel_offset from the per-input sizes.
// Returns an empty string, or the reason the shapes are invalid.
std::string MakePaddedConcatShape(int64_t batch, const std::vector<int64_t>& height,
                                  const std::vector<int64_t>& width,
                                  const std::vector<int64_t>& channels, int elem_size,
                                  PaddedConcatShape* shape);

// mask: num_inputs bytes (nonzero = on) or nullptr (all on). Writes every output
// byte exactly once.
void PaddedConcatForwardCpu(const PaddedConcatShape& shape, const void* const* inputs,
                            const uint8_t* mask, void* output, const ParallelFor& parallel_for);
// grad_inputs[i] = slice of grad_output for input i, zeros where mask[i] == 0.
void PaddedConcatBackwardCpu(const PaddedConcatShape& shape, const void* grad_output,
                             const uint8_t* mask, void* const* grad_inputs,
                             const ParallelFor& parallel_for);

// ---------------------------------------------------------------- gather matmul
struct GatherMatmulShape {
  int64_t groups = 1;  // G
  int64_t batch = 0;   // B
  int64_t in_dim = 0;  // N (rows of each weight matrix)
  int64_t out_dim = 0; // M (columns of each weight matrix)
  int64_t bank = 0;    // K
  bool transpose_weights = false;
  int64_t x_cols() const { return transpose_weights ? out_dim : in_dim; }
  int64_t y_cols() const { return transpose_weights ? in_dim : out_dim; }
};

// Returns "" or e.g. "index[3] = 12 is not in [0, 12)".
std::string ValidateIndex(const int32_t* index, int64_t count, int64_t bank);
std::string ValidateIndex(const int64_t* index, int64_t count, int64_t bank);

// index: groups entries, already validated, on the host. x/weights/y are of
// `dtype`; accumulation is in float32 (float64 for kFloat64). Every output
// element is written once; the selected matrix is read in place.
void GatherMatmulCpu(DType dtype, const GatherMatmulShape& shape, const void* x,
                     const void* weights, const int64_t* index, void* y,
                     const ParallelFor& parallel_for);
// Which CPU code path GatherMatmulCpu uses for float32 ("avx512", "avx2", "generic").
const char* GatherMatmulCpuPath();

// ---------------------------------------------------------------- CUDA launchers
// Available when the library was built with NAS_TF_WITH_CUDA. Each returns 0 on
// success or a cudaError_t code; GpuErrorString turns it into a message. Pointers
// are device pointers unless said otherwise; work is queued on `stream`.
bool BuiltWithCuda();
const char* GpuErrorString(int code);

// inputs: host array of num_inputs device pointers; mask: device bytes or nullptr.
int PaddedConcatForwardGpu(const PaddedConcatShape& shape, const void* const* inputs,
                           const uint8_t* mask, void* output, cudaStream_t stream);
int PaddedConcatBackwardGpu(const PaddedConcatShape& shape, const void* grad_output,
                            const uint8_t* mask, void* const* grad_inputs, cudaStream_t stream);
// index: host array (validated). float32, float16 and bfloat16.
int GatherMatmulGpu(DType dtype, const GatherMatmulShape& shape, const void* x,
                    const void* weights, const int64_t* index, void* y, cudaStream_t stream);

// Small helpers for the pybind11 module (device memory without a framework).
int GpuSynchronize();

}  // namespace kernels
}  // namespace nas_tf

#endif  // NAS_TF_CSRC_KERNELS_NAS_TF_KERNELS_H_
