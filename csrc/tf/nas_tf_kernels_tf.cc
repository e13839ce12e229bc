// TensorFlow CPU and GPU kernels of the nas_tf ops: they check the inputs
// (clear InvalidArgument errors, never a crash), allocate the outputs and call
// the framework-free kernels (csrc/kernels/). The CPU kernels run on
// TensorFlow's intra-op thread pool; the GPU kernels take the stream from the
// op context and call the plain CUDA launchers.
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/util/work_sharder.h"

#if GOOGLE_CUDA
#include "xla/stream_executor/stream.h"
#endif

#include "../kernels/nas_tf_kernels.h"

namespace nas_tf {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::DEVICE_GPU;
using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::OpOutputList;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace errors = ::tensorflow::errors;

struct CPUDevice {};
struct GPUDevice {};

namespace {

kernels::ParallelFor CpuParallelFor(OpKernelContext* ctx) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  return [workers](int64_t total, int64_t cost, const std::function<void(int64_t, int64_t)>& work) {
    ::tensorflow::Shard(workers->num_threads, workers->workers, total, cost, work);
  };
}

#if GOOGLE_CUDA
cudaStream_t GpuStream(OpKernelContext* ctx) {
  return reinterpret_cast<cudaStream_t>(ctx->op_device_context()->stream()->platform_specific_handle().stream);
}
#endif

template <typename T> kernels::DType KernelDType();
template <> kernels::DType KernelDType<float>() { return kernels::DType::kFloat32; }
template <> kernels::DType KernelDType<double>() { return kernels::DType::kFloat64; }
template <> kernels::DType KernelDType<Eigen::half>() { return kernels::DType::kFloat16; }
template <> kernels::DType KernelDType<Eigen::bfloat16>() { return kernels::DType::kBFloat16; }

}  // namespace

// ------------------------------------------------------------ padded concat
template <typename Device, typename T>
class PaddedConcatOp : public OpKernel {
 public:
  explicit PaddedConcatOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    OpInputList values;
    OP_REQUIRES_OK(ctx, ctx->input_list("values", &values));
    const Tensor& mask = ctx->input(values.size());
    const int n = values.size();
    OP_REQUIRES(ctx, mask.dims() == 1 && mask.dim_size(0) == n,
                errors::InvalidArgument("NasTfPaddedConcat: mask must have shape [", n, "], got ",
                                        mask.shape().DebugString()));
    std::vector<int64_t> h(n), w(n), c(n);
    for (int i = 0; i < n; ++i) {
      const Tensor& v = values[i];
      OP_REQUIRES(ctx, v.dims() == 4,
                  errors::InvalidArgument("NasTfPaddedConcat: input ", i, " must be rank 4 (NHWC), got shape ",
                                          v.shape().DebugString()));
      OP_REQUIRES(ctx, v.dim_size(0) == values[0].dim_size(0),
                  errors::InvalidArgument("NasTfPaddedConcat: input ", i, " has batch ", v.dim_size(0),
                                          " but input 0 has batch ", values[0].dim_size(0)));
      h[i] = v.dim_size(1);
      w[i] = v.dim_size(2);
      c[i] = v.dim_size(3);
    }
    kernels::PaddedConcatShape shape;
    const std::string err =
        kernels::MakePaddedConcatShape(values[0].dim_size(0), h, w, c, static_cast<int>(sizeof(T)), &shape);
    OP_REQUIRES(ctx, err.empty(), errors::InvalidArgument("NasTfPaddedConcat: ", err));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({shape.batch, shape.out_height, shape.out_width, shape.out_channels}),
                            &out));
    std::vector<const void*> ptrs(n);
    for (int i = 0; i < n; ++i) ptrs[i] = values[i].tensor_data().data();
    const uint8_t* mask_ptr = reinterpret_cast<const uint8_t*>(mask.tensor_data().data());
    void* out_ptr = const_cast<char*>(out->tensor_data().data());
    if (std::is_same<Device, CPUDevice>::value) {
      kernels::PaddedConcatForwardCpu(shape, ptrs.data(), mask_ptr, out_ptr, CpuParallelFor(ctx));
    } else {
#if GOOGLE_CUDA
      const int code = kernels::PaddedConcatForwardGpu(shape, ptrs.data(), mask_ptr, out_ptr, GpuStream(ctx));
      OP_REQUIRES(ctx, code == 0, errors::Internal("NasTfPaddedConcat CUDA launch: ", kernels::GpuErrorString(code)));
#endif
    }
  }
};

// ------------------------------------------------------------ gradient
template <typename Device, typename T>
class PaddedConcatGradOp : public OpKernel {
 public:
  explicit PaddedConcatGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(0);
    const Tensor& mask = ctx->input(1);
    const Tensor& sizes = ctx->input(2);
    int n = 0;
    OP_REQUIRES_OK(ctx, GetNodeAttr(def(), "N", &n));
    OP_REQUIRES(ctx, grad.dims() == 4,
                errors::InvalidArgument("NasTfPaddedConcatGrad: grad must be rank 4, got ", grad.shape().DebugString()));
    OP_REQUIRES(ctx, mask.dims() == 1 && mask.dim_size(0) == n,
                errors::InvalidArgument("NasTfPaddedConcatGrad: mask must have shape [", n, "]"));
    OP_REQUIRES(ctx, sizes.dims() == 2 && sizes.dim_size(0) == n && sizes.dim_size(1) == 3,
                errors::InvalidArgument("NasTfPaddedConcatGrad: sizes must have shape [", n, ", 3], got ",
                                        sizes.shape().DebugString()));
    auto s = sizes.matrix<int32_t>();
    std::vector<int64_t> h(n), w(n), c(n);
    for (int i = 0; i < n; ++i) {
      h[i] = s(i, 0);
      w[i] = s(i, 1);
      c[i] = s(i, 2);
    }
    kernels::PaddedConcatShape shape;
    const std::string err = kernels::MakePaddedConcatShape(grad.dim_size(0), h, w, c, static_cast<int>(sizeof(T)), &shape);
    OP_REQUIRES(ctx, err.empty(), errors::InvalidArgument("NasTfPaddedConcatGrad: ", err));
    OP_REQUIRES(ctx, shape.out_height == grad.dim_size(1) && shape.out_width == grad.dim_size(2) &&
                         shape.out_channels == grad.dim_size(3),
                errors::InvalidArgument("NasTfPaddedConcatGrad: grad shape ", grad.shape().DebugString(),
                                        " does not match the input sizes (", shape.out_height, ", ", shape.out_width,
                                        ", ", shape.out_channels, ")"));
    OpOutputList outs;
    OP_REQUIRES_OK(ctx, ctx->output_list("grads", &outs));
    std::vector<void*> ptrs(n);
    for (int i = 0; i < n; ++i) {
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx, outs.allocate(i, TensorShape({shape.batch, h[i], w[i], c[i]}), &t));
      ptrs[i] = const_cast<char*>(t->tensor_data().data());
    }
    const uint8_t* mask_ptr = reinterpret_cast<const uint8_t*>(mask.tensor_data().data());
    const void* g = grad.tensor_data().data();
    if (std::is_same<Device, CPUDevice>::value) {
      kernels::PaddedConcatBackwardCpu(shape, g, mask_ptr, ptrs.data(), CpuParallelFor(ctx));
    } else {
#if GOOGLE_CUDA
      const int code = kernels::PaddedConcatBackwardGpu(shape, g, mask_ptr, ptrs.data(), GpuStream(ctx));
      OP_REQUIRES(ctx, code == 0, errors::Internal("NasTfPaddedConcatGrad CUDA launch: ", kernels::GpuErrorString(code)));
#endif
    }
  }
};

// ------------------------------------------------------------ gather matmul
template <typename Device, typename T, typename Index>
class GatherMatmulOp : public OpKernel {
 public:
  explicit GatherMatmulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transpose_weights", &transpose_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& weights = ctx->input(1);
    const Tensor& index = ctx->input(2);
    OP_REQUIRES(ctx, weights.dims() == 3,
                errors::InvalidArgument("NasTfGatherMatmul: weights must be rank 3 [K, N, M], got shape ",
                                        weights.shape().DebugString()));
    OP_REQUIRES(ctx, x.dims() == 2 || x.dims() == 3,
                errors::InvalidArgument("NasTfGatherMatmul: x must be rank 2 [B, N] or rank 3 [G, B, N], got shape ",
                                        x.shape().DebugString()));
    OP_REQUIRES(ctx, index.dims() == x.dims() - 2,
                errors::InvalidArgument("NasTfGatherMatmul: x of rank ", x.dims(), " needs an index of rank ",
                                        x.dims() - 2, ", got shape ", index.shape().DebugString()));
    kernels::GatherMatmulShape s;
    s.bank = weights.dim_size(0);
    s.in_dim = weights.dim_size(1);
    s.out_dim = weights.dim_size(2);
    s.transpose_weights = transpose_;
    s.groups = x.dims() == 3 ? x.dim_size(0) : 1;
    s.batch = x.dim_size(x.dims() - 2);
    OP_REQUIRES(ctx, x.dims() == 2 || index.dim_size(0) == s.groups,
                errors::InvalidArgument("NasTfGatherMatmul: x has ", s.groups, " groups but index has ",
                                        index.dim_size(0), " entries"));
    OP_REQUIRES(ctx, x.dim_size(x.dims() - 1) == s.x_cols(),
                errors::InvalidArgument("NasTfGatherMatmul: x has ", x.dim_size(x.dims() - 1),
                                        " columns but the weights need ", s.x_cols(), " (weights shape ",
                                        weights.shape().DebugString(), ")"));
    const Index* idx = reinterpret_cast<const Index*>(index.tensor_data().data());
    const std::string err = kernels::ValidateIndex(idx, s.groups, s.bank);
    OP_REQUIRES(ctx, err.empty(), errors::InvalidArgument("NasTfGatherMatmul: ", err));
    std::vector<int64_t> idx64(idx, idx + s.groups);
    TensorShape out_shape;
    if (x.dims() == 3) out_shape.AddDim(s.groups);
    out_shape.AddDim(s.batch);
    out_shape.AddDim(s.y_cols());
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &y));
    const void* xp = x.tensor_data().data();
    const void* wp = weights.tensor_data().data();
    void* yp = const_cast<char*>(y->tensor_data().data());
    if (std::is_same<Device, CPUDevice>::value) {
      kernels::GatherMatmulCpu(KernelDType<T>(), s, xp, wp, idx64.data(), yp, CpuParallelFor(ctx));
    } else {
#if GOOGLE_CUDA
      const int code = kernels::GatherMatmulGpu(KernelDType<T>(), s, xp, wp, idx64.data(), yp, GpuStream(ctx));
      OP_REQUIRES(ctx, code == 0, errors::Internal("NasTfGatherMatmul CUDA launch: ", kernels::GpuErrorString(code)));
#endif
    }
  }

 private:
  bool transpose_ = false;
};

// ------------------------------------------------------------ registrations
#define NAS_TF_REGISTER_CONCAT(DEV, DEVICE, T)                                                         \
  REGISTER_KERNEL_BUILDER(Name("NasTfPaddedConcat").Device(DEVICE).TypeConstraint<T>("T"),           \
                          PaddedConcatOp<DEV, T>);
#define NAS_TF_REGISTER_CONCAT_GRAD(DEV, DEVICE, T)                                                    \
  REGISTER_KERNEL_BUILDER(                                                                            \
      Name("NasTfPaddedConcatGrad").Device(DEVICE).TypeConstraint<T>("T").HostMemory("sizes"),       \
      PaddedConcatGradOp<DEV, T>);
#define NAS_TF_REGISTER_MATMUL(DEV, DEVICE, T, I)                                                      \
  REGISTER_KERNEL_BUILDER(Name("NasTfGatherMatmul")                                                   \
                              .Device(DEVICE)                                                         \
                              .TypeConstraint<T>("T")                                                 \
                              .TypeConstraint<I>("Tindex")                                            \
                              .HostMemory("index"),                                                   \
                          GatherMatmulOp<DEV, T, I>);

NAS_TF_REGISTER_CONCAT(CPUDevice, DEVICE_CPU, Eigen::half)
NAS_TF_REGISTER_CONCAT(CPUDevice, DEVICE_CPU, Eigen::bfloat16)
NAS_TF_REGISTER_CONCAT(CPUDevice, DEVICE_CPU, float)
NAS_TF_REGISTER_CONCAT(CPUDevice, DEVICE_CPU, double)
NAS_TF_REGISTER_CONCAT(CPUDevice, DEVICE_CPU, int32_t)
NAS_TF_REGISTER_CONCAT(CPUDevice, DEVICE_CPU, int64_t)
NAS_TF_REGISTER_CONCAT_GRAD(CPUDevice, DEVICE_CPU, Eigen::half)
NAS_TF_REGISTER_CONCAT_GRAD(CPUDevice, DEVICE_CPU, Eigen::bfloat16)
NAS_TF_REGISTER_CONCAT_GRAD(CPUDevice, DEVICE_CPU, float)
NAS_TF_REGISTER_CONCAT_GRAD(CPUDevice, DEVICE_CPU, double)
#define NAS_TF_REGISTER_MATMUL_CPU(T)                  \
  NAS_TF_REGISTER_MATMUL(CPUDevice, DEVICE_CPU, T, int32_t) \
  NAS_TF_REGISTER_MATMUL(CPUDevice, DEVICE_CPU, T, int64_t)
NAS_TF_REGISTER_MATMUL_CPU(Eigen::half)
NAS_TF_REGISTER_MATMUL_CPU(Eigen::bfloat16)
NAS_TF_REGISTER_MATMUL_CPU(float)
NAS_TF_REGISTER_MATMUL_CPU(double)

#if GOOGLE_CUDA
// int32 tensors live in host memory on TensorFlow GPU devices; the GPU kernels
// are registered for the float types (and int64 for the copy op).
NAS_TF_REGISTER_CONCAT(GPUDevice, DEVICE_GPU, Eigen::half)
NAS_TF_REGISTER_CONCAT(GPUDevice, DEVICE_GPU, Eigen::bfloat16)
NAS_TF_REGISTER_CONCAT(GPUDevice, DEVICE_GPU, float)
NAS_TF_REGISTER_CONCAT(GPUDevice, DEVICE_GPU, double)
NAS_TF_REGISTER_CONCAT(GPUDevice, DEVICE_GPU, int64_t)
NAS_TF_REGISTER_CONCAT_GRAD(GPUDevice, DEVICE_GPU, Eigen::half)
NAS_TF_REGISTER_CONCAT_GRAD(GPUDevice, DEVICE_GPU, Eigen::bfloat16)
NAS_TF_REGISTER_CONCAT_GRAD(GPUDevice, DEVICE_GPU, float)
NAS_TF_REGISTER_CONCAT_GRAD(GPUDevice, DEVICE_GPU, double)
#define NAS_TF_REGISTER_MATMUL_GPU(T)                  \
  NAS_TF_REGISTER_MATMUL(GPUDevice, DEVICE_GPU, T, int32_t) \
  NAS_TF_REGISTER_MATMUL(GPUDevice, DEVICE_GPU, T, int64_t)
NAS_TF_REGISTER_MATMUL_GPU(Eigen::half)
NAS_TF_REGISTER_MATMUL_GPU(Eigen::bfloat16)
NAS_TF_REGISTER_MATMUL_GPU(float)
#endif

}  // namespace nas_tf
