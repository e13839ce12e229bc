// TensorFlow op definitions of nas_tf (names prefixed NasTf) and their shape
// functions. Kernels: nas_tf_kernels_tf.cc. Gradients are registered in Python
// (nas_tf/ops/).
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

#ifndef NAS_TF_BUILD_INFO
#define NAS_TF_BUILD_INFO "{}"
#endif

// The build record (TensorFlow version, source hash, CUDA): csrc/build.py
// finds it in the file, so a library built for another TensorFlow is never loaded.
extern "C" __attribute__((used)) const char nas_tf_build_info[] =
    "NAS_TF_BUILD_INFO=" NAS_TF_BUILD_INFO;

namespace nas_tf {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;
namespace errors = ::tensorflow::errors;

namespace {

// Max of known dimensions, unknown if any is unknown.
absl::Status PaddedConcatShapeFn(InferenceContext* c) {
  int n = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  DimensionHandle batch = c->UnknownDim();
  int64_t height = 0, width = 0, channels = 0;
  bool h_known = true, w_known = true, c_known = true;
  int batch_from = -1;
  for (int i = 0; i < n; ++i) {
    ShapeHandle s;
    if (!c->WithRank(c->input(i), 4, &s).ok()) {
      return errors::InvalidArgument("NasTfPaddedConcat: input ", i, " must be rank 4 (NHWC), got shape ",
                                     c->DebugString(c->input(i)));
    }
    DimensionHandle b = c->Dim(s, 0);
    if (c->ValueKnown(b)) {
      if (c->ValueKnown(batch) && c->Value(batch) != c->Value(b)) {
        return errors::InvalidArgument("NasTfPaddedConcat: input ", i, " has batch ", c->Value(b), " but input ",
                                       batch_from, " has batch ", c->Value(batch));
      }
      if (!c->ValueKnown(batch)) batch_from = i;
      batch = b;
    }
    auto take_max = [&](int axis, int64_t* v, bool* known) {
      DimensionHandle d = c->Dim(s, axis);
      if (!c->ValueKnown(d)) *known = false;
      else *v = std::max<int64_t>(*v, c->Value(d));
    };
    take_max(1, &height, &h_known);
    take_max(2, &width, &w_known);
    DimensionHandle ch = c->Dim(s, 3);
    if (!c->ValueKnown(ch)) c_known = false;
    else channels += c->Value(ch);
  }
  ShapeHandle mask;
  if (!c->WithRank(c->input(n), 1, &mask).ok()) {
    return errors::InvalidArgument("NasTfPaddedConcat: mask must be a vector of ", n, " bools, got shape ",
                                   c->DebugString(c->input(n)));
  }
  DimensionHandle m = c->Dim(mask, 0);
  if (c->ValueKnown(m) && c->Value(m) != n) {
    return errors::InvalidArgument("NasTfPaddedConcat: mask must have ", n, " entries (one per input), got ",
                                   c->Value(m));
  }
  c->set_output(0, c->MakeShape({batch, h_known ? c->MakeDim(height) : c->UnknownDim(),
                                 w_known ? c->MakeDim(width) : c->UnknownDim(),
                                 c_known ? c->MakeDim(channels) : c->UnknownDim()}));
  return absl::OkStatus();
}

absl::Status PaddedConcatGradShapeFn(InferenceContext* c) {
  int n = 0;
  TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
  ShapeHandle g;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &g));
  ShapeHandle sizes;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &sizes));
  for (int i = 0; i < n; ++i) {
    c->set_output(i, c->MakeShape({c->Dim(g, 0), c->UnknownDim(), c->UnknownDim(), c->UnknownDim()}));
  }
  return absl::OkStatus();
}

absl::Status GatherMatmulShapeFn(InferenceContext* c) {
  ShapeHandle x = c->input(0), w = c->input(1), index = c->input(2);
  bool transpose = false;
  TF_RETURN_IF_ERROR(c->GetAttr("transpose_weights", &transpose));
  ShapeHandle w3;
  if (!c->WithRank(w, 3, &w3).ok()) {
    return errors::InvalidArgument("NasTfGatherMatmul: weights must be rank 3 [K, N, M], got shape ",
                                   c->DebugString(w));
  }
  const DimensionHandle in_dim = c->Dim(w3, transpose ? 2 : 1);
  const DimensionHandle out_dim = c->Dim(w3, transpose ? 1 : 2);
  if (!c->RankKnown(x)) {
    c->set_output(0, c->UnknownShape());
    return absl::OkStatus();
  }
  const int rank = c->Rank(x);
  if (rank != 2 && rank != 3) {
    return errors::InvalidArgument("NasTfGatherMatmul: x must be rank 2 [B, N] or rank 3 [G, B, N], got shape ",
                                   c->DebugString(x));
  }
  if (c->RankKnown(index) && c->Rank(index) != rank - 2) {
    return errors::InvalidArgument("NasTfGatherMatmul: x of rank ", rank, " needs an index of rank ", rank - 2,
                                   ", got shape ", c->DebugString(index));
  }
  const DimensionHandle cols = c->Dim(x, rank - 1);
  if (c->ValueKnown(cols) && c->ValueKnown(in_dim) && c->Value(cols) != c->Value(in_dim)) {
    return errors::InvalidArgument("NasTfGatherMatmul: x has ", c->Value(cols), " columns but the weights need ",
                                   c->Value(in_dim), " (weights shape ", c->DebugString(w3), ")");
  }
  if (rank == 2) {
    c->set_output(0, c->MakeShape({c->Dim(x, 0), out_dim}));
  } else {
    DimensionHandle groups = c->Dim(x, 0);
    if (c->RankKnown(index)) {
      DimensionHandle ig = c->Dim(index, 0);
      if (c->ValueKnown(ig) && c->ValueKnown(groups) && c->Value(ig) != c->Value(groups)) {
        return errors::InvalidArgument("NasTfGatherMatmul: x has ", c->Value(groups), " groups but index has ",
                                       c->Value(ig), " entries");
      }
    }
    c->set_output(0, c->MakeShape({groups, c->Dim(x, 1), out_dim}));
  }
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("NasTfPaddedConcat")
    .Input("values: N * T")
    .Input("mask: bool")
    .Output("output: T")
    .Attr("N: int >= 1")
    .Attr("T: {half, bfloat16, float, double, int32, int64}")
    .SetShapeFn(PaddedConcatShapeFn)
    .Doc(R"doc(
Zero-pads NHWC tensors to the largest height and width (bottom/right) and
concatenates them on channels. mask[i] == false replaces input i by zeros.
)doc");

REGISTER_OP("NasTfPaddedConcatGrad")
    .Input("grad: T")
    .Input("mask: bool")
    .Input("sizes: int32")
    .Output("grads: N * T")
    .Attr("N: int >= 1")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn(PaddedConcatGradShapeFn)
    .Doc(R"doc(
Gradient of NasTfPaddedConcat: grads[i] is the slice of grad that input i
(size sizes[i] = [H_i, W_i, C_i]) was copied to; zeros where mask[i] is false.
)doc");

REGISTER_OP("NasTfGatherMatmul")
    .Input("x: T")
    .Input("weights: T")
    .Input("index: Tindex")
    .Output("y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("Tindex: {int32, int64} = DT_INT32")
    .Attr("transpose_weights: bool = false")
    .Attr("dense_weight_grad: bool = false")
    .SetShapeFn(GatherMatmulShapeFn)
    .Doc(R"doc(
y = x @ weights[index] (x [B, N], scalar index) or y[g] = x[g] @ weights[index[g]]
(x [G, B, N], index [G]); weights [K, N, M]. The selected matrix is read in
place. transpose_weights uses weights[index]^T (x [.., M] -> y [.., N]).
dense_weight_grad only changes the registered gradient (dense tensor instead of
IndexedSlices).
)doc");

}  // namespace nas_tf
