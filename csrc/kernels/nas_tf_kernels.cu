// CUDA kernels and plain launchers of nas_tf (no TensorFlow headers). The
// TensorFlow GPU kernels (csrc/tf/kernels.cc) and the pybind11 module call the
// launchers with a stream; nothing here allocates memory or synchronises.
//
// padded concat forward: one pass over the output, each thread writes one
//   vector (up to 16 bytes) read from its input or zero; rows of the output on
//   grid.y, the row's vectors on grid.x.
// padded concat backward: grid.z = input; each input's gradient is a strided
//   read of its channel slice of the upstream gradient (zeros when masked off).
// gather matmul: a tiled matrix product whose B operand is read in place from
//   weights + index[g] * N * M (index on the host); grid.z = group. The tile is
//   chosen so the launch has enough blocks for the device.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "nas_tf_kernels.h"

namespace nas_tf {
namespace kernels {

namespace {

constexpr int kMaxInputs = 16;   // inputs per padded-concat launch
constexpr int kMaxGroups = 64;   // groups per gather-matmul launch

// Makes the stream's device current (TensorFlow may use several GPUs).
int UseStreamDevice(cudaStream_t stream) {
  if (stream == nullptr) return 0;
  int device = -1, current = -1;
  cudaError_t err = cudaStreamGetDevice(stream, &device);
  if (err != cudaSuccess) return err;
  err = cudaGetDevice(&current);
  if (err != cudaSuccess) return err;
  if (device != current) err = cudaSetDevice(device);
  return err;
}

int MultiprocessorCount() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return 80;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) return 80;
  return count > 0 ? count : 80;
}

template <typename V> __device__ __forceinline__ V ZeroVec();
template <> __device__ __forceinline__ uint4 ZeroVec<uint4>() { return make_uint4(0, 0, 0, 0); }
template <> __device__ __forceinline__ uint2 ZeroVec<uint2>() { return make_uint2(0, 0); }
template <> __device__ __forceinline__ unsigned int ZeroVec<unsigned int>() { return 0u; }
template <> __device__ __forceinline__ unsigned short ZeroVec<unsigned short>() { return 0; }
template <> __device__ __forceinline__ unsigned char ZeroVec<unsigned char>() { return 0; }

// Sizes in units of the launch's vector type.
struct ConcatParams {
  const void* src[kMaxInputs];
  void* dst[kMaxInputs];         // backward: per-input gradients
  int64_t height[kMaxInputs], width[kMaxInputs];
  int64_t cvec[kMaxInputs];      // channel vectors of each input
  int64_t begin[kMaxInputs + 1]; // forward: prefix of cvec within the launch
  int64_t offset[kMaxInputs];    // channel-vector offset of each input in the output
  int n;
  int64_t batch, out_height, out_width, out_cvec;
  int64_t seg;                   // forward: vectors per pixel handled by the launch
  int64_t seg_offset;            // forward: first output channel vector of the launch
  const void* out_src;           // backward: upstream gradient
  void* out;                     // forward: output
  const uint8_t* mask;           // device, indexed by mask_base + i, or nullptr
  int mask_base;
};

template <typename V>
__global__ void PaddedConcatForwardKernel(ConcatParams p) {
  __shared__ unsigned char on[kMaxInputs];
  if (threadIdx.x < p.n) on[threadIdx.x] = p.mask == nullptr ? 1 : (p.mask[p.mask_base + threadIdx.x] != 0);
  __syncthreads();
  const int64_t rows = p.batch * p.out_height;
  const int64_t row_vecs = p.out_width * p.seg;
  V* out = static_cast<V*>(p.out);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t b = r / p.out_height, h = r - b * p.out_height;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < row_vecs; j += (int64_t)gridDim.x * blockDim.x) {
      const int64_t w = j / p.seg, cv = j - w * p.seg;
      int i = 0;
      while (cv >= p.begin[i + 1]) ++i;
      const int64_t local = cv - p.begin[i];
      V value = ZeroVec<V>();
      if (on[i] && h < p.height[i] && w < p.width[i]) {
        const V* src = static_cast<const V*>(p.src[i]);
        value = __ldg(src + ((b * p.height[i] + h) * p.width[i] + w) * p.cvec[i] + local);
      }
      out[(r * p.out_width + w) * p.out_cvec + p.seg_offset + cv] = value;
    }
  }
}

template <typename V>
__global__ void PaddedConcatBackwardKernel(ConcatParams p) {
  const int i = blockIdx.z;
  const bool on = p.mask == nullptr || p.mask[p.mask_base + i] != 0;
  const int64_t rows = p.batch * p.height[i];
  const int64_t row_vecs = p.width[i] * p.cvec[i];
  const V* g = static_cast<const V*>(p.out_src);
  V* dst = static_cast<V*>(p.dst[i]);
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const int64_t b = r / p.height[i], h = r - b * p.height[i];
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < row_vecs; j += (int64_t)gridDim.x * blockDim.x) {
      const int64_t w = j / p.cvec[i], cv = j - w * p.cvec[i];
      V value = ZeroVec<V>();
      if (on) value = __ldg(g + ((b * p.out_height + h) * p.out_width + w) * p.out_cvec + p.offset[i] + cv);
      dst[r * row_vecs + j] = value;
    }
  }
}

// Largest power-of-two byte width <= 16 that divides every size and address.
int VectorBytes(const int64_t* byte_sizes, int n_sizes, const void* const* ptrs, int n_ptrs) {
  for (int v = 16; v > 1; v /= 2) {
    bool ok = true;
    for (int k = 0; k < n_sizes && ok; ++k) ok = byte_sizes[k] % v == 0;
    for (int k = 0; k < n_ptrs && ok; ++k) ok = reinterpret_cast<uintptr_t>(ptrs[k]) % v == 0;
    if (ok) return v;
  }
  return 1;
}

dim3 ConcatGrid(int64_t rows, int64_t row_vecs, int threads, int z) {
  const int64_t gx = std::min<int64_t>(std::max<int64_t>(1, (row_vecs + threads - 1) / threads), 1024);
  const int64_t gy = std::min<int64_t>(std::max<int64_t>(1, rows), 65535);
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(z));
}

template <typename V>
int LaunchForward(ConcatParams p, int64_t vec_bytes, cudaStream_t stream) {
  (void)vec_bytes;
  constexpr int kThreads = 256;
  const dim3 grid = ConcatGrid(p.batch * p.out_height, p.out_width * p.seg, kThreads, 1);
  PaddedConcatForwardKernel<V><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename V>
int LaunchBackward(ConcatParams p, cudaStream_t stream) {
  constexpr int kThreads = 256;
  int64_t rows = 1, row_vecs = 1;
  for (int i = 0; i < p.n; ++i) {
    rows = std::max(rows, p.batch * p.height[i]);
    row_vecs = std::max(row_vecs, p.width[i] * p.cvec[i]);
  }
  const dim3 grid = ConcatGrid(rows, row_vecs, kThreads, p.n);
  PaddedConcatBackwardKernel<V><<<grid, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename Fn>
int DispatchVector(int bytes, Fn fn) {
  switch (bytes) {
    case 16: return fn(uint4());
    case 8: return fn(uint2());
    case 4: return fn((unsigned int)0);
    case 2: return fn((unsigned short)0);
    default: return fn((unsigned char)0);
  }
}

// ------------------------------------------------------------------ matmul
template <typename T> __device__ __forceinline__ float ToF(T v);
template <> __device__ __forceinline__ float ToF<float>(float v) { return v; }
template <> __device__ __forceinline__ float ToF<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T FromF(float v);
template <> __device__ __forceinline__ float FromF<float>(float v) { return v; }
template <> __device__ __forceinline__ __half FromF<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

struct GroupParams {
  int64_t first;                // first group of the launch
  int64_t index[kMaxGroups];    // bank slot of each group of the launch
};

// y[g] (+0) = x[g] @ W (TRANS: @ W^T), W = weights[index[g]] read in place.
// x[g]: [B, depth], y[g]: [B, ycols]; W: [N, M] row-major.
template <typename T, int BM, int BN, int BK, int TM, int TN, bool TRANS>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
GatherMatmulKernel(const T* __restrict__ x, const T* __restrict__ weights, T* __restrict__ y, GroupParams gp,
                   int64_t batch, int64_t n_rows, int64_t m_cols) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  __shared__ float As[BK][BM + 1];
  __shared__ float Bs[BK][BN + 1];
  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  const int64_t g = gp.first + blockIdx.z;
  const T* w = weights + gp.index[blockIdx.z] * n_rows * m_cols;
  const int64_t depth = TRANS ? m_cols : n_rows;
  const int64_t ycols = TRANS ? n_rows : m_cols;
  const T* xg = x + g * batch * depth;
  T* yg = y + g * batch * ycols;
  const int64_t row0 = (int64_t)blockIdx.y * BM, col0 = (int64_t)blockIdx.x * BN;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < depth; k0 += BK) {
    for (int e = tid; e < BM * BK; e += kThreads) {
      const int r = e / BK, kk = e % BK;
      const int64_t gr = row0 + r, gk = k0 + kk;
      As[kk][r] = (gr < batch && gk < depth) ? ToF<T>(xg[gr * depth + gk]) : 0.0f;
    }
    if (!TRANS) {
      for (int e = tid; e < BK * BN; e += kThreads) {
        const int kk = e / BN, c = e % BN;
        const int64_t gk = k0 + kk, gc = col0 + c;
        Bs[kk][c] = (gk < depth && gc < ycols) ? ToF<T>(w[gk * m_cols + gc]) : 0.0f;
      }
    } else {
      for (int e = tid; e < BK * BN; e += kThreads) {
        const int c = e / BK, kk = e % BK;
        const int64_t gk = k0 + kk, gc = col0 + c;
        Bs[kk][c] = (gk < depth && gc < ycols) ? ToF<T>(w[gc * m_cols + gk]) : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t gr = row0 + ty * TM + i;
    if (gr >= batch) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t gc = col0 + tx * TN + j;
      if (gc < ycols) yg[gr * ycols + gc] = FromF<T>(acc[i][j]);
    }
  }
}

template <typename T, int BM, int BN, int BK, int TM, int TN>
int LaunchMatmulConfig(const GatherMatmulShape& s, const T* x, const T* w, const int64_t* index, T* y,
                       cudaStream_t stream) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  const int64_t ycols = s.y_cols();
  const dim3 grid0(static_cast<unsigned>((ycols + BN - 1) / BN), static_cast<unsigned>((s.batch + BM - 1) / BM), 1);
  for (int64_t first = 0; first < s.groups; first += kMaxGroups) {
    GroupParams gp;
    gp.first = first;
    const int64_t count = std::min<int64_t>(kMaxGroups, s.groups - first);
    for (int64_t k = 0; k < count; ++k) gp.index[k] = index[first + k];
    dim3 grid = grid0;
    grid.z = static_cast<unsigned>(count);
    if (s.transpose_weights)
      GatherMatmulKernel<T, BM, BN, BK, TM, TN, true><<<grid, kThreads, 0, stream>>>(x, w, y, gp, s.batch, s.in_dim, s.out_dim);
    else
      GatherMatmulKernel<T, BM, BN, BK, TM, TN, false><<<grid, kThreads, 0, stream>>>(x, w, y, gp, s.batch, s.in_dim, s.out_dim);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <typename T>
int LaunchMatmul(const GatherMatmulShape& s, const void* x, const void* w, const int64_t* index, void* y,
                 cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  T* yt = static_cast<T*>(y);
  const int64_t ycols = s.y_cols();
  const int64_t want = 2 * static_cast<int64_t>(MultiprocessorCount());
  auto blocks = [&](int64_t bm, int64_t bn) { return s.groups * ((s.batch + bm - 1) / bm) * ((ycols + bn - 1) / bn); };
  if (blocks(64, 64) >= want) return LaunchMatmulConfig<T, 64, 64, 16, 4, 4>(s, xt, wt, index, yt, stream);
  if (blocks(32, 32) >= want) return LaunchMatmulConfig<T, 32, 32, 16, 2, 2>(s, xt, wt, index, yt, stream);
  return LaunchMatmulConfig<T, 16, 32, 16, 2, 2>(s, xt, wt, index, yt, stream);
}

template <typename T>
__global__ void ZeroKernel(T* y, int64_t count) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < count; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = T(0);
}

}  // namespace

bool BuiltWithCuda() { return true; }

const char* GpuErrorString(int code) {
  if (code == -1) return "invalid arguments to a nas_tf CUDA launcher";
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

int PaddedConcatForwardGpu(const PaddedConcatShape& s, const void* const* inputs, const uint8_t* mask, void* output,
                           cudaStream_t stream) {
  int err = UseStreamDevice(stream);
  if (err != 0) return err;
  if (s.output_elements() == 0) return 0;
  const int n = s.num_inputs();
  for (int first = 0; first < n; first += kMaxInputs) {
    const int count = std::min(kMaxInputs, n - first);
    // Byte sizes and pointers that must be multiples of the vector width.
    int64_t sizes[kMaxInputs + 2];
    const void* ptrs[kMaxInputs + 1];
    int ns = 0, np = 0;
    for (int k = 0; k < count; ++k) {
      sizes[ns++] = s.channels[first + k] * s.elem_size;
      if (s.channels[first + k] > 0 && s.batch * s.height[first + k] * s.width[first + k] > 0) ptrs[np++] = inputs[first + k];
    }
    sizes[ns++] = s.out_channels * s.elem_size;
    sizes[ns++] = s.channel_offset[first] * s.elem_size;
    ptrs[np++] = output;
    const int v = VectorBytes(sizes, ns, ptrs, np);
    ConcatParams p{};
    p.n = count;
    p.batch = s.batch;
    p.out_height = s.out_height;
    p.out_width = s.out_width;
    p.out_cvec = s.out_channels * s.elem_size / v;
    p.seg_offset = s.channel_offset[first] * s.elem_size / v;
    p.begin[0] = 0;
    for (int k = 0; k < count; ++k) {
      p.src[k] = inputs[first + k];
      p.height[k] = s.height[first + k];
      p.width[k] = s.width[first + k];
      p.cvec[k] = s.channels[first + k] * s.elem_size / v;
      p.begin[k + 1] = p.begin[k] + p.cvec[k];
    }
    for (int k = count; k < kMaxInputs; ++k) p.begin[k + 1] = INT64_MAX;  // the search stops at count - 1
    p.seg = p.begin[count];
    if (p.seg == 0) continue;
    p.out = output;
    p.mask = mask;
    p.mask_base = first;
    err = DispatchVector(v, [&](auto tag) { return LaunchForward<decltype(tag)>(p, v, stream); });
    if (err != 0) return err;
  }
  return 0;
}

int PaddedConcatBackwardGpu(const PaddedConcatShape& s, const void* grad_output, const uint8_t* mask,
                            void* const* grad_inputs, cudaStream_t stream) {
  int err = UseStreamDevice(stream);
  if (err != 0) return err;
  const int n = s.num_inputs();
  for (int first = 0; first < n; first += kMaxInputs) {
    const int count = std::min(kMaxInputs, n - first);
    int64_t sizes[2 * kMaxInputs + 1];
    const void* ptrs[kMaxInputs + 1];
    int ns = 0, np = 0;
    ConcatParams p{};
    int m = 0;
    for (int k = 0; k < count; ++k) {
      const int i = first + k;
      if (s.batch * s.height[i] * s.width[i] * s.channels[i] == 0) continue;  // nothing to write
      sizes[ns++] = s.channels[i] * s.elem_size;
      sizes[ns++] = s.channel_offset[i] * s.elem_size;
      ptrs[np++] = grad_inputs[i];
      p.dst[m] = grad_inputs[i];
      p.height[m] = s.height[i];
      p.width[m] = s.width[i];
      p.offset[m] = s.channel_offset[i];  // in elements for now
      p.cvec[m] = s.channels[i];
      p.begin[m] = i;                     // original input index (for the mask)
      ++m;
    }
    if (m == 0) continue;
    sizes[ns++] = s.out_channels * s.elem_size;
    ptrs[np++] = grad_output;
    const int v = VectorBytes(sizes, ns, ptrs, np);
    p.n = m;
    p.batch = s.batch;
    p.out_height = s.out_height;
    p.out_width = s.out_width;
    p.out_cvec = s.out_channels * s.elem_size / v;
    for (int k = 0; k < m; ++k) {
      p.offset[k] = p.offset[k] * s.elem_size / v;
      p.cvec[k] = p.cvec[k] * s.elem_size / v;
    }
    p.out_src = grad_output;
    // The kernel reads mask[mask_base + z]; compact the launch's inputs first.
    bool contiguous = true;
    for (int k = 0; k < m; ++k) contiguous = contiguous && p.begin[k] == p.begin[0] + k;
    if (mask != nullptr && !contiguous) {
      // Launch the inputs one by one so mask_base + 0 is the right entry.
      for (int k = 0; k < m; ++k) {
        ConcatParams q = p;
        q.n = 1;
        q.dst[0] = p.dst[k];
        q.height[0] = p.height[k];
        q.width[0] = p.width[k];
        q.offset[0] = p.offset[k];
        q.cvec[0] = p.cvec[k];
        q.mask = mask;
        q.mask_base = static_cast<int>(p.begin[k]);
        err = DispatchVector(v, [&](auto tag) { return LaunchBackward<decltype(tag)>(q, stream); });
        if (err != 0) return err;
      }
      continue;
    }
    p.mask = mask;
    p.mask_base = static_cast<int>(p.begin[0]);
    err = DispatchVector(v, [&](auto tag) { return LaunchBackward<decltype(tag)>(p, stream); });
    if (err != 0) return err;
  }
  return 0;
}

int GatherMatmulGpu(DType dtype, const GatherMatmulShape& s, const void* x, const void* w, const int64_t* index,
                    void* y, cudaStream_t stream) {
  int err = UseStreamDevice(stream);
  if (err != 0) return err;
  const int64_t count = s.groups * s.batch * s.y_cols();
  if (count == 0) return 0;
  if (s.x_cols() == 0) {  // empty inner dimension: zeros
    const int blocks = static_cast<int>(std::min<int64_t>((count + 255) / 256, 4096));
    switch (dtype) {
      case DType::kFloat32: ZeroKernel<float><<<blocks, 256, 0, stream>>>(static_cast<float*>(y), count); break;
      case DType::kFloat16: ZeroKernel<__half><<<blocks, 256, 0, stream>>>(static_cast<__half*>(y), count); break;
      case DType::kBFloat16: ZeroKernel<__nv_bfloat16><<<blocks, 256, 0, stream>>>(static_cast<__nv_bfloat16*>(y), count); break;
      default: return -1;
    }
    return cudaGetLastError();
  }
  switch (dtype) {
    case DType::kFloat32: return LaunchMatmul<float>(s, x, w, index, y, stream);
    case DType::kFloat16: return LaunchMatmul<__half>(s, x, w, index, y, stream);
    case DType::kBFloat16: return LaunchMatmul<__nv_bfloat16>(s, x, w, index, y, stream);
    default: return -1;
  }
}

int GpuSynchronize() { return cudaDeviceSynchronize(); }

}  // namespace kernels
}  // namespace nas_tf
