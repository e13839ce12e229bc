// Shared helpers of the framework-free kernels: a std::thread ParallelFor,
// dtype names, shape checks, index validation, and the CUDA stubs of a CPU-only
// build.
#include <algorithm>
#include <thread>

#include "nas_tf_kernels.h"

namespace nas_tf {
namespace kernels {

ParallelFor StdThreadParallelFor(int num_threads) {
  if (num_threads <= 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  return [num_threads](int64_t total, int64_t cost_per_unit,
                       const std::function<void(int64_t, int64_t)>& work) {
    if (total <= 0) return;
    // About 100k cycles per thread make a thread worth starting.
    const int64_t min_units = std::max<int64_t>(1, 100000 / std::max<int64_t>(1, cost_per_unit));
    const int64_t threads = std::min<int64_t>(num_threads, (total + min_units - 1) / min_units);
    if (threads <= 1) {
      work(0, total);
      return;
    }
    const int64_t chunk = (total + threads - 1) / threads;
    std::vector<std::thread> pool;
    pool.reserve(threads - 1);
    for (int64_t t = 1; t < threads; ++t) {
      const int64_t begin = t * chunk, end = std::min(total, begin + chunk);
      if (begin < end) pool.emplace_back([&work, begin, end] { work(begin, end); });
    }
    work(0, std::min(total, chunk));
    for (auto& th : pool) th.join();
  };
}

int DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kFloat64: return 8;
    case DType::kFloat16: return 2;
    case DType::kBFloat16: return 2;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
  }
  return "?";
}

std::string MakePaddedConcatShape(int64_t batch, const std::vector<int64_t>& height,
                                  const std::vector<int64_t>& width,
                                  const std::vector<int64_t>& channels, int elem_size,
                                  PaddedConcatShape* shape) {
  const size_t n = height.size();
  if (n == 0) return "padded_concat needs at least one input";
  if (width.size() != n || channels.size() != n) return "padded_concat: inconsistent shape lists";
  if (batch < 0) return "padded_concat: negative batch";
  shape->batch = batch;
  shape->height = height;
  shape->width = width;
  shape->channels = channels;
  shape->channel_offset.assign(n, 0);
  shape->elem_size = elem_size;
  shape->out_height = shape->out_width = shape->out_channels = 0;
  for (size_t i = 0; i < n; ++i) {
    if (height[i] < 0 || width[i] < 0 || channels[i] < 0) return "padded_concat: negative dimension";
    shape->out_height = std::max(shape->out_height, height[i]);
    shape->out_width = std::max(shape->out_width, width[i]);
    shape->channel_offset[i] = shape->out_channels;
    shape->out_channels += channels[i];
  }
  return "";
}

template <typename Index>
static std::string ValidateIndexImpl(const Index* index, int64_t count, int64_t bank) {
  for (int64_t g = 0; g < count; ++g) {
    if (index[g] < 0 || static_cast<int64_t>(index[g]) >= bank) {
      return "index[" + std::to_string(g) + "] = " + std::to_string(static_cast<int64_t>(index[g])) +
             " is not in [0, " + std::to_string(bank) + ")";
    }
  }
  return "";
}
std::string ValidateIndex(const int32_t* index, int64_t count, int64_t bank) {
  return ValidateIndexImpl(index, count, bank);
}
std::string ValidateIndex(const int64_t* index, int64_t count, int64_t bank) {
  return ValidateIndexImpl(index, count, bank);
}

#ifndef NAS_TF_WITH_CUDA
bool BuiltWithCuda() { return false; }
const char* GpuErrorString(int code) {
  return code == 0 ? "no error" : "nas_tf kernels were built without CUDA";
}
int PaddedConcatForwardGpu(const PaddedConcatShape&, const void* const*, const uint8_t*, void*,
                           cudaStream_t) { return -1; }
int PaddedConcatBackwardGpu(const PaddedConcatShape&, const void*, const uint8_t*, void* const*,
                            cudaStream_t) { return -1; }
int GatherMatmulGpu(DType, const GatherMatmulShape&, const void*, const void*, const int64_t*,
                    void*, cudaStream_t) { return -1; }
int GpuSynchronize() { return -1; }
#endif

}  // namespace kernels
}  // namespace nas_tf
