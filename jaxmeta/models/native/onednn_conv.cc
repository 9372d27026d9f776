// 3x3 "SAME" stride-1 convolutions of NHWC float32 images with HWIO kernels,
// computed by oneDNN's direct convolution kernels, as XLA FFI custom calls.
//
// Three bilinear maps, each the transpose of another in one argument, so that
// the Python side (jaxmeta/models/onednn_conv.py) can differentiate them to
// any order with nothing but these three calls:
//   forward:          y[n,h,w,o]  = sum_{i,j,c} xpad[n,h+i,w+j,c] k[i,j,c,o]
//   backward_data:    dx = (d/dx of <y, dy>)  given dy and k
//   backward_weights: dk = (d/dk of <y, dy>)  given x and dy
// The images stay in XLA's NHWC layout; the kernel is reordered into the
// format oneDNN picks, inside each call.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;

namespace {

enum class Op { kForward, kBackwardData, kBackwardWeights };

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& Stream() {
  static dnnl::stream stream(Engine());
  return stream;
}

// One convolution problem: its primitive, oneDNN's chosen formats, and
// scratch memories in those formats (reused between calls under the lock).
struct Plan {
  memory::desc src_user, weights_user, dst_user;
  memory src, weights, dst;  // in oneDNN's formats
  dnnl::primitive conv;
};

using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t>;

std::unique_ptr<Plan> MakePlan(Op op, int64_t n, int64_t h, int64_t w, int64_t c, int64_t o) {
  auto& eng = Engine();
  const auto f32 = memory::data_type::f32;
  memory::dims src_dims{n, c, h, w}, weights_dims{o, c, 3, 3}, dst_dims{n, o, h, w};
  memory::dims strides{1, 1}, padding{1, 1};
  // The images stay NHWC, where oneDNN has direct (brgemm) kernels for all three problems: reordering
  // them into its blocked layout and back costs more than it saves at these sizes. So does the kernel
  // of the forward pass (HWIO) and of the data gradient (HWOI, transposed by the caller); the kernel
  // gradient is computed in whichever format oneDNN prefers and reordered into HWIO.
  auto plan = std::make_unique<Plan>();
  plan->src_user = memory::desc(src_dims, f32, tag::nhwc);
  plan->dst_user = memory::desc(dst_dims, f32, tag::nhwc);
  plan->weights_user = memory::desc(weights_dims, f32, op == Op::kBackwardData ? tag::hwoi : tag::hwio);
  const memory::desc weights = op == Op::kBackwardWeights ? memory::desc(weights_dims, f32, tag::any)
                                                           : plan->weights_user;
  auto forward = dnnl::convolution_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, plan->src_user, weights,
      plan->dst_user, strides, padding, padding);
  if (op == Op::kForward) {
    plan->weights = memory(forward.weights_desc(), eng);
    plan->conv = dnnl::convolution_forward(forward);
  } else if (op == Op::kBackwardData) {
    auto pd = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, plan->src_user, weights, plan->dst_user, strides, padding,
        padding, forward);
    plan->weights = memory(pd.weights_desc(), eng);
    plan->conv = dnnl::convolution_backward_data(pd);
  } else {
    auto pd = dnnl::convolution_backward_weights::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, plan->src_user, weights, plan->dst_user, strides, padding,
        padding, forward);
    plan->weights = memory(pd.diff_weights_desc(), eng);
    plan->conv = dnnl::convolution_backward_weights(pd);
  }
  plan->src = memory(plan->src_user, eng, DNNL_MEMORY_NONE);  // never used: the images are bound directly
  plan->dst = memory(plan->dst_user, eng, DNNL_MEMORY_NONE);
  return plan;
}

std::mutex& Lock() {
  static std::mutex mutex;
  return mutex;
}

Plan& GetPlan(Op op, int64_t n, int64_t h, int64_t w, int64_t c, int64_t o) {
  static std::map<Key, std::unique_ptr<Plan>> plans;
  Key key{static_cast<int>(op), n, h, w, c, o};
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, MakePlan(op, n, h, w, c, o)).first;
  return *it->second;
}

// The memory a primitive reads an input from: the user's buffer itself when it is already in the
// primitive's format, else `scratch` after a reorder into it.
memory In(memory& user, memory& scratch) {
  if (user.get_desc() == scratch.get_desc()) return user;
  dnnl::reorder(user, scratch).execute(Stream(), user, scratch);
  return scratch;
}

// The memory a primitive writes an output to: the user's buffer when the formats agree, else `scratch`.
memory Out(memory& user, memory& scratch) { return user.get_desc() == scratch.get_desc() ? user : scratch; }

// Copies a result from `scratch` into the user's buffer unless it was written there directly.
void Finish(memory& result, memory& user) {
  if (result.get_data_handle() != user.get_data_handle()) dnnl::reorder(result, user).execute(Stream(), result, user);
}

// Runs `op` on user buffers: x [n,h,w,c], k [3,3,c,o], y [n,h,w,o] (NHWC / HWIO), two inputs and one output.
ffi::Error Run(Op op, float* x, float* k, float* y, int64_t n, int64_t h, int64_t w, int64_t c, int64_t o) {
  try {
    std::lock_guard<std::mutex> guard(Lock());
    Plan& plan = GetPlan(op, n, h, w, c, o);
    auto& eng = Engine();
    memory x_user(plan.src_user, eng, x), k_user(plan.weights_user, eng, k), y_user(plan.dst_user, eng, y);
    auto& stream = Stream();
    if (op == Op::kForward) {
      memory result = Out(y_user, plan.dst);
      plan.conv.execute(stream, {{DNNL_ARG_SRC, In(x_user, plan.src)}, {DNNL_ARG_WEIGHTS, In(k_user, plan.weights)},
                                 {DNNL_ARG_DST, result}});
      Finish(result, y_user);
    } else if (op == Op::kBackwardData) {  // inputs: y (the output gradient), k; result: x
      memory result = Out(x_user, plan.src);
      plan.conv.execute(stream, {{DNNL_ARG_DIFF_DST, In(y_user, plan.dst)},
                                 {DNNL_ARG_WEIGHTS, In(k_user, plan.weights)}, {DNNL_ARG_DIFF_SRC, result}});
      Finish(result, x_user);
    } else {  // inputs: x, y (the output gradient); result: k
      memory result = Out(k_user, plan.weights);
      plan.conv.execute(stream, {{DNNL_ARG_SRC, In(x_user, plan.src)}, {DNNL_ARG_DIFF_DST, In(y_user, plan.dst)},
                                 {DNNL_ARG_DIFF_WEIGHTS, result}});
      Finish(result, k_user);
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  }
  return ffi::Error::Success();
}

using F32 = ffi::Buffer<ffi::F32>;

const char* kShapes = "expected images [N,H,W,C] and a kernel [3,3,C,O] ([3,3,O,C] for the data gradient)";

ffi::Error Forward(F32 x, F32 k, ffi::ResultBuffer<ffi::F32> y) {
  auto a = x.dimensions(), kd = k.dimensions();
  if (a.size() != 4 || kd.size() != 4) return ffi::Error::InvalidArgument(kShapes);
  return Run(Op::kForward, x.typed_data(), k.typed_data(), y->typed_data(), a[0], a[1], a[2], a[3], kd[3]);
}

ffi::Error BackwardData(F32 dy, F32 k, ffi::ResultBuffer<ffi::F32> dx) {
  auto a = dy.dimensions(), kd = k.dimensions();  // k: [3, 3, O, C] (HWOI)
  if (a.size() != 4 || kd.size() != 4) return ffi::Error::InvalidArgument(kShapes);
  return Run(Op::kBackwardData, dx->typed_data(), k.typed_data(), dy.typed_data(), a[0], a[1], a[2], kd[3], kd[2]);
}

ffi::Error BackwardWeights(F32 x, F32 dy, ffi::ResultBuffer<ffi::F32> dk) {
  auto a = x.dimensions(), b = dy.dimensions();
  if (a.size() != 4 || b.size() != 4) return ffi::Error::InvalidArgument(kShapes);
  return Run(Op::kBackwardWeights, x.typed_data(), dk->typed_data(), dy.typed_data(), a[0], a[1], a[2], a[3], b[3]);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxmetaOnednnConvForward, Forward,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxmetaOnednnConvBackwardData, BackwardData,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxmetaOnednnConvBackwardWeights, BackwardWeights,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Ret<F32>());
