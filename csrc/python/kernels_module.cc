// pybind11 module nas_tf._kernels: the framework-free kernels on NumPy arrays
// (CPU) and, when built with CUDA, on device buffers given as raw pointers
// (nas_tf/kernels.py accepts any object with __cuda_array_interface__), so the
// kernels can be tested and timed without TensorFlow.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/nas_tf_kernels.h"

#ifndef NAS_TF_BUILD_INFO
#define NAS_TF_BUILD_INFO "{}"
#endif

// The build record (Python extension suffix, source hash, CUDA): csrc/build.py
// finds it in the file before the module is imported.
extern "C" __attribute__((used)) const char nas_tf_build_info[] =
    "NAS_TF_BUILD_INFO=" NAS_TF_BUILD_INFO;

namespace py = pybind11;
using nas_tf::kernels::DType;

namespace {

DType DTypeOf(const py::dtype& dt, const char* what) {
  const std::string name = py::str(dt.attr("name"));
  if (name == "float32") return DType::kFloat32;
  if (name == "float64") return DType::kFloat64;
  if (name == "float16") return DType::kFloat16;
  if (name == "bfloat16") return DType::kBFloat16;
  throw py::type_error(std::string(what) + ": unsupported dtype " + name +
                       " (float32, float64, float16, bfloat16)");
}

DType DTypeFromName(const std::string& name) {
  if (name == "float32") return DType::kFloat32;
  if (name == "float64") return DType::kFloat64;
  if (name == "float16") return DType::kFloat16;
  if (name == "bfloat16") return DType::kBFloat16;
  throw py::type_error("unsupported dtype " + name);
}

py::array Contiguous(const py::array& a) {
  return py::array::ensure(a, py::array::c_style);  // no copy when already C-contiguous
}

std::vector<uint8_t> MaskBytes(const std::optional<py::array>& mask, int n) {
  std::vector<uint8_t> on;
  if (!mask) return on;
  py::array m = py::array::ensure(*mask, py::array::c_style);
  if (m.ndim() != 1 || m.shape(0) != n)
    throw py::value_error("mask must have shape [" + std::to_string(n) + "], got ndim " + std::to_string(m.ndim()));
  py::array_t<uint8_t> b = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>(m.attr("astype")("bool"));
  on.assign(b.data(), b.data() + n);
  return on;
}

nas_tf::kernels::PaddedConcatShape ConcatShape(int64_t batch, const std::vector<std::vector<int64_t>>& hwc,
                                               int elem_size) {
  std::vector<int64_t> h, w, c;
  for (const auto& s : hwc) {
    if (s.size() != 3) throw py::value_error("each input size must be (height, width, channels)");
    h.push_back(s[0]);
    w.push_back(s[1]);
    c.push_back(s[2]);
  }
  nas_tf::kernels::PaddedConcatShape shape;
  const std::string err = nas_tf::kernels::MakePaddedConcatShape(batch, h, w, c, elem_size, &shape);
  if (!err.empty()) throw py::value_error(err);
  return shape;
}

py::array PaddedConcat(const std::vector<py::array>& inputs, const std::optional<py::array>& mask,
                       int num_threads) {
  if (inputs.empty()) throw py::value_error("padded_concat needs at least one input");
  std::vector<py::array> arrays;
  std::vector<std::vector<int64_t>> hwc;
  const py::dtype dt = inputs[0].dtype();
  for (size_t i = 0; i < inputs.size(); ++i) {
    py::array a = Contiguous(inputs[i]);
    if (a.ndim() != 4)
      throw py::value_error("padded_concat: input " + std::to_string(i) + " must be rank 4 (NHWC), got rank " +
                            std::to_string(a.ndim()));
    if (!a.dtype().is(dt)) throw py::type_error("padded_concat: input " + std::to_string(i) + " has another dtype than input 0");
    if (a.shape(0) != inputs[0].shape(0))
      throw py::value_error("padded_concat: input " + std::to_string(i) + " has batch " + std::to_string(a.shape(0)) +
                            ", input 0 has " + std::to_string(inputs[0].shape(0)));
    hwc.push_back({a.shape(1), a.shape(2), a.shape(3)});
    arrays.push_back(a);
  }
  auto shape = ConcatShape(inputs[0].shape(0), hwc, static_cast<int>(dt.itemsize()));
  const auto on = MaskBytes(mask, shape.num_inputs());
  py::array out(dt, std::vector<py::ssize_t>{shape.batch, shape.out_height, shape.out_width, shape.out_channels});
  std::vector<const void*> ptrs;
  for (auto& a : arrays) ptrs.push_back(a.data());
  void* out_ptr = out.mutable_data();
  {
    py::gil_scoped_release release;
    nas_tf::kernels::PaddedConcatForwardCpu(shape, ptrs.data(), on.empty() ? nullptr : on.data(), out_ptr,
                                            nas_tf::kernels::StdThreadParallelFor(num_threads));
  }
  return out;
}

std::vector<py::array> PaddedConcatGrad(const py::array& grad_in, const std::vector<std::vector<int64_t>>& sizes,
                                        const std::optional<py::array>& mask, int num_threads) {
  py::array grad = Contiguous(grad_in);
  if (grad.ndim() != 4) throw py::value_error("padded_concat_grad: grad must be rank 4");
  auto shape = ConcatShape(grad.shape(0), sizes, static_cast<int>(grad.dtype().itemsize()));
  if (shape.out_height != grad.shape(1) || shape.out_width != grad.shape(2) || shape.out_channels != grad.shape(3))
    throw py::value_error("padded_concat_grad: grad shape does not match the input sizes");
  const auto on = MaskBytes(mask, shape.num_inputs());
  std::vector<py::array> outs;
  std::vector<void*> ptrs;
  for (int i = 0; i < shape.num_inputs(); ++i) {
    outs.emplace_back(grad.dtype(), std::vector<py::ssize_t>{shape.batch, shape.height[i], shape.width[i], shape.channels[i]});
    ptrs.push_back(outs.back().mutable_data());
  }
  const void* g = grad.data();
  {
    py::gil_scoped_release release;
    nas_tf::kernels::PaddedConcatBackwardCpu(shape, g, on.empty() ? nullptr : on.data(), ptrs.data(),
                                             nas_tf::kernels::StdThreadParallelFor(num_threads));
  }
  return outs;
}

nas_tf::kernels::GatherMatmulShape MatmulShape(const std::vector<int64_t>& x_shape, const std::vector<int64_t>& w_shape,
                                               int64_t index_count, bool index_scalar, bool transpose) {
  if (w_shape.size() != 3) throw py::value_error("gather_matmul: weights must be rank 3 [K, N, M], got rank " + std::to_string(w_shape.size()));
  nas_tf::kernels::GatherMatmulShape s;
  s.bank = w_shape[0];
  s.in_dim = w_shape[1];
  s.out_dim = w_shape[2];
  s.transpose_weights = transpose;
  if (x_shape.size() == 2) {
    if (!index_scalar) throw py::value_error("gather_matmul: x of rank 2 needs a scalar index");
    s.groups = 1;
    s.batch = x_shape[0];
  } else if (x_shape.size() == 3) {
    if (index_scalar || index_count != x_shape[0])
      throw py::value_error("gather_matmul: x of shape [G, B, *] needs an index of shape [G]");
    s.groups = x_shape[0];
    s.batch = x_shape[1];
  } else {
    throw py::value_error("gather_matmul: x must be rank 2 or 3, got rank " + std::to_string(x_shape.size()));
  }
  if (x_shape.back() != s.x_cols())
    throw py::value_error("gather_matmul: x has " + std::to_string(x_shape.back()) + " columns, weights need " +
                          std::to_string(s.x_cols()));
  return s;
}

std::vector<int64_t> IndexVector(const py::object& index_in, bool* scalar) {
  py::array idx = Contiguous(py::module_::import("numpy").attr("asarray")(index_in));
  if (idx.ndim() > 1) throw py::value_error("gather_matmul: index must be a scalar or a vector");
  *scalar = idx.ndim() == 0;
  const char kind = idx.dtype().kind();
  if (kind != 'i' && kind != 'u') throw py::type_error("gather_matmul: index must be an integer array");
  py::array_t<int64_t> i64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>(idx);
  return std::vector<int64_t>(i64.data(), i64.data() + i64.size());
}

py::array GatherMatmul(const py::array& x_in, const py::array& w_in, const py::object& index_in, bool transpose,
                       int num_threads) {
  py::array x = Contiguous(x_in), w = Contiguous(w_in);
  const DType dtype = DTypeOf(x.dtype(), "gather_matmul");
  if (!w.dtype().is(x.dtype())) throw py::type_error("gather_matmul: x and weights must have the same dtype");
  bool scalar = false;
  const auto index = IndexVector(index_in, &scalar);
  std::vector<int64_t> xs(x.shape(), x.shape() + x.ndim()), ws(w.shape(), w.shape() + w.ndim());
  const auto s = MatmulShape(xs, ws, static_cast<int64_t>(index.size()), scalar, transpose);
  const std::string err = nas_tf::kernels::ValidateIndex(index.data(), s.groups, s.bank);
  if (!err.empty()) throw py::index_error("gather_matmul: " + err);
  std::vector<py::ssize_t> out_shape;
  if (xs.size() == 3) out_shape.push_back(s.groups);
  out_shape.push_back(s.batch);
  out_shape.push_back(s.y_cols());
  py::array y(x.dtype(), out_shape);
  const void* xp = x.data();
  const void* wp = w.data();
  void* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    nas_tf::kernels::GatherMatmulCpu(dtype, s, xp, wp, index.data(), yp,
                                     nas_tf::kernels::StdThreadParallelFor(num_threads));
  }
  return y;
}

void CheckGpu(int code, const char* what) {
  if (code != 0) throw std::runtime_error(std::string(what) + ": " + nas_tf::kernels::GpuErrorString(code));
}

cudaStream_t Stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void PaddedConcatCuda(const std::vector<uintptr_t>& inputs, const std::vector<std::vector<int64_t>>& sizes,
                      int64_t batch, int elem_size, uintptr_t output, uintptr_t mask, uintptr_t stream) {
  auto shape = ConcatShape(batch, sizes, elem_size);
  if (inputs.size() != sizes.size()) throw py::value_error("padded_concat_cuda: one pointer per input size");
  std::vector<const void*> ptrs;
  for (auto p : inputs) ptrs.push_back(reinterpret_cast<const void*>(p));
  int code;
  {
    py::gil_scoped_release release;
    code = nas_tf::kernels::PaddedConcatForwardGpu(shape, ptrs.data(), reinterpret_cast<const uint8_t*>(mask),
                                                   reinterpret_cast<void*>(output), Stream(stream));
  }
  CheckGpu(code, "padded_concat_cuda");
}

void PaddedConcatGradCuda(uintptr_t grad, const std::vector<std::vector<int64_t>>& sizes, int64_t batch,
                          int elem_size, const std::vector<uintptr_t>& grad_inputs, uintptr_t mask,
                          uintptr_t stream) {
  auto shape = ConcatShape(batch, sizes, elem_size);
  if (grad_inputs.size() != sizes.size()) throw py::value_error("padded_concat_grad_cuda: one pointer per input size");
  std::vector<void*> ptrs;
  for (auto p : grad_inputs) ptrs.push_back(reinterpret_cast<void*>(p));
  int code;
  {
    py::gil_scoped_release release;
    code = nas_tf::kernels::PaddedConcatBackwardGpu(shape, reinterpret_cast<const void*>(grad),
                                                    reinterpret_cast<const uint8_t*>(mask), ptrs.data(),
                                                    Stream(stream));
  }
  CheckGpu(code, "padded_concat_grad_cuda");
}

void GatherMatmulCuda(const std::string& dtype, uintptr_t x, uintptr_t w, const std::vector<int64_t>& index,
                      uintptr_t y, int64_t batch, int64_t in_dim, int64_t out_dim, int64_t bank, bool transpose,
                      uintptr_t stream) {
  nas_tf::kernels::GatherMatmulShape s;
  s.groups = static_cast<int64_t>(index.size());
  s.batch = batch;
  s.in_dim = in_dim;
  s.out_dim = out_dim;
  s.bank = bank;
  s.transpose_weights = transpose;
  const std::string err = nas_tf::kernels::ValidateIndex(index.data(), s.groups, s.bank);
  if (!err.empty()) throw py::index_error("gather_matmul_cuda: " + err);
  const DType dt = DTypeFromName(dtype);
  int code;
  {
    py::gil_scoped_release release;
    code = nas_tf::kernels::GatherMatmulGpu(dt, s, reinterpret_cast<const void*>(x), reinterpret_cast<const void*>(w),
                                            index.data(), reinterpret_cast<void*>(y), Stream(stream));
  }
  CheckGpu(code, "gather_matmul_cuda");
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
  m.doc() = "nas_tf framework-free kernels (padded concat, gather matmul) on NumPy arrays and CUDA buffers";
  m.def("build_info", [] {
    py::dict d;
    d["cuda"] = nas_tf::kernels::BuiltWithCuda();
    d["build"] = std::string(NAS_TF_BUILD_INFO);
    d["cpu_gather_matmul_path"] = std::string(nas_tf::kernels::GatherMatmulCpuPath());
    return d;
  });
  m.def("padded_concat", &PaddedConcat, py::arg("inputs"), py::arg("mask") = py::none(), py::arg("num_threads") = 0,
        "Zero-pads NHWC arrays to the largest H, W (bottom/right) and concatenates channels.");
  m.def("padded_concat_grad", &PaddedConcatGrad, py::arg("grad"), py::arg("sizes"), py::arg("mask") = py::none(),
        py::arg("num_threads") = 0, "Gradient of padded_concat: the slice of grad for each input (zeros if masked).");
  m.def("gather_matmul", &GatherMatmul, py::arg("x"), py::arg("weights"), py::arg("index"),
        py::arg("transpose_weights") = false, py::arg("num_threads") = 0,
        "x @ weights[index] (x [B, N], scalar index) or per group (x [G, B, N], index [G]).");
  m.def("cuda_available", &nas_tf::kernels::BuiltWithCuda);
  m.def("padded_concat_cuda", &PaddedConcatCuda, py::arg("inputs"), py::arg("sizes"), py::arg("batch"),
        py::arg("elem_size"), py::arg("output"), py::arg("mask") = 0, py::arg("stream") = 0);
  m.def("padded_concat_grad_cuda", &PaddedConcatGradCuda, py::arg("grad"), py::arg("sizes"), py::arg("batch"),
        py::arg("elem_size"), py::arg("grad_inputs"), py::arg("mask") = 0, py::arg("stream") = 0);
  m.def("gather_matmul_cuda", &GatherMatmulCuda, py::arg("dtype"), py::arg("x"), py::arg("weights"), py::arg("index"),
        py::arg("y"), py::arg("batch"), py::arg("in_dim"), py::arg("out_dim"), py::arg("bank"),
        py::arg("transpose_weights") = false, py::arg("stream") = 0);
  m.def("cuda_synchronize", [] {
    int code;
    {
      py::gil_scoped_release release;
      code = nas_tf::kernels::GpuSynchronize();
    }
    CheckGpu(code, "cuda_synchronize");
  });
}
