#pragma once
// The autograd tape: Param, Tape and Var.
//
// A Tape records one node per op, in creation order. tape.backward(loss)
// walks the nodes from the loss back to the first, calling each node's
// backward with its output gradient; there is no sorting, because creation
// order is already a topological order.
//
// Contracts (docs/architecture.md, "Adding an op"):
// - Backward functions accumulate (+=) into gradients that start at zero, so
//   fan-out and residual connections are right by construction. An op that
//   writes every element of an input's gradient may instead ask for a
//   GradSlot: the first write to a node's gradient then overwrites a fresh,
//   uninitialised buffer (no zero fill, no read), and later ones accumulate.
// - A node requires a gradient when any of its inputs does; nodes that do not
//   keep no backward closure, and ops skip input gradients nobody needs.
// - Params (value + grad) outlive the tape. tape.param(p) puts p on the tape
//   without copying: its gradient accumulates straight into p.grad(). After
//   p.zero_grad() the gradient is a pending zero, and a GradSlot treats it
//   as a fresh buffer (Param, above).
// - The tape is cleared after every step (tape.clear()); a Param must not be
//   moved or destroyed while a tape that references it is still in use.
// - Gradient recording can be switched off (set_grad_enabled(false), or a
//   NoGradGuard), as torch.no_grad(): leaves and Params then enter as values
//   that need no gradient and record() keeps no closures, so the same
//   forward code serves inference without building a backward graph.

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "qaware/core/error.hpp"
#include "qaware/core/tensor.hpp"

namespace qaware {

template <typename Scalar>
class Tape;

// A trainable tensor with its gradient. The gradient is allocated, zeroed,
// with the value.
//
// zero_grad() zeroes the gradient lazily: it only marks it zero. Reading it
// (grad()) fills the zeros then; a tape backward that writes every element
// of the gradient (Tape::grad_slot) instead overwrites it without the fill
// and without reading it, as a fresh buffer. Either way grad() shows the same
// values as with an eager fill; a training step just makes two passes fewer
// over the gradients (for a BERT-base block, 2 x 28 MB).
template <typename Scalar>
class Param {
 public:
  Param() = default;
  explicit Param(Shape shape) : value_(DynTensor<Scalar>::zeros(shape)), grad_(DynTensor<Scalar>::zeros(shape)) {}
  explicit Param(DynTensor<Scalar> value)
      : value_(std::move(value)), grad_(DynTensor<Scalar>::zeros(value_.shape())) {}
  template <int Rank>
  explicit Param(const Tensor<Scalar, Rank>& value) : Param(DynTensor<Scalar>::from(value)) {}

  DynTensor<Scalar>& value() { return value_; }
  const DynTensor<Scalar>& value() const { return value_; }
  DynTensor<Scalar>& grad() {
    fill_pending_zeros();
    return grad_;
  }
  const DynTensor<Scalar>& grad() const {
    fill_pending_zeros();
    return grad_;
  }
  const Shape& shape() const { return value_.shape(); }
  Index numel() const { return value_.numel(); }

  // Replace the value (same shape; used by loaders and tests).
  void assign(const DynTensor<Scalar>& v) {
    QAWARE_CHECK(v.shape() == shape(), "Param::assign: shape ", v.shape().str(), " does not match ",
                 shape().str());
    value_ = v;
  }

  // A frozen Param still enters the tape but receives no gradient.
  bool requires_grad() const { return requires_grad_; }
  void set_requires_grad(bool on) { requires_grad_ = on; }

  // Sets the gradient to zero (lazily, see above).
  void zero_grad() { zero_pending_ = true; }
  // For a backward that writes every element of the gradient: true when the
  // gradient is a pending zero, which the caller MUST then overwrite in full
  // (grad() holds stale values until it does); false when the caller must
  // add into grad() as usual.
  bool claim_zero_grad_for_overwrite() {
    const bool pending = zero_pending_;
    zero_pending_ = false;
    return pending;
  }

 private:
  void fill_pending_zeros() const {
    if (!zero_pending_) return;
    grad_.set_zero();
    zero_pending_ = false;
  }

  DynTensor<Scalar> value_;
  // The gradient and whether it is a pending zero; mutable so that a const
  // read can fill the zeros (its values do not change).
  mutable DynTensor<Scalar> grad_;
  mutable bool zero_pending_ = false;
  bool requires_grad_ = true;
};

// A cheap handle to a node on a tape.
template <typename Scalar>
class Var {
 public:
  Var() = default;
  Var(Tape<Scalar>* tape, std::int32_t id) : tape_(tape), id_(id) {}

  bool valid() const { return tape_ != nullptr && id_ >= 0; }
  Tape<Scalar>& tape() const {
    QAWARE_CHECK(valid(), "Var: this handle is empty (default-constructed)");
    return *tape_;
  }
  std::int32_t id() const { return id_; }

  const DynTensor<Scalar>& value() const;
  const Shape& shape() const { return value().shape(); }
  Index numel() const { return value().numel(); }
  int rank() const { return value().rank(); }
  Index dim(int i) const { return value().dim(i); }
  bool requires_grad() const;
  // The value of a one-element Var.
  Scalar item() const;
  // Fixed-rank views / copies of the value.
  template <int Rank>
  ConstTensorMap<Scalar, Rank> view() const {
    return value().template view<Rank>();
  }
  template <int Rank>
  Tensor<Scalar, Rank> tensor() const {
    return value().template to_tensor<Rank>();
  }
  // The gradient after backward (zeros if nothing flowed into it). Throws if
  // this Var does not require a gradient.
  const DynTensor<Scalar>& grad() const;

 private:
  Tape<Scalar>* tape_ = nullptr;
  std::int32_t id_ = -1;
};

template <typename Scalar>
class Tape {
 public:
  using VarT = Var<Scalar>;
  // Called during backward with the node's output gradient. It must add (+=)
  // into the gradients of the node's inputs that require one (or overwrite a
  // fresh grad_slot()).
  using BackwardFn = std::function<void(Tape& tape, const DynTensor<Scalar>& grad_out)>;

  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // A value that needs no gradient (inputs, targets, masks).
  VarT constant(DynTensor<Scalar> value) { return push(std::move(value), nullptr, nullptr, false, {}); }
  template <int Rank>
  VarT constant(const Tensor<Scalar, Rank>& value) {
    return constant(DynTensor<Scalar>::from(value));
  }
  // A leaf whose gradient is kept on the tape (read it with var.grad()).
  VarT leaf(DynTensor<Scalar> value, bool requires_grad = true) {
    return push(std::move(value), nullptr, nullptr, requires_grad, {});
  }
  template <int Rank>
  VarT leaf(const Tensor<Scalar, Rank>& value, bool requires_grad = true) {
    return leaf(DynTensor<Scalar>::from(value), requires_grad);
  }
  // A Param: no copy; its gradient accumulates into p.grad().
  VarT param(Param<Scalar>& p) { return push(DynTensor<Scalar>(), &p.value(), &p, p.requires_grad(), {}); }

  // Whether new nodes may require gradients (default true). When false,
  // leaf(), param() and record() create nodes that need no gradient.
  void set_grad_enabled(bool on) { grad_enabled_ = on; }
  bool grad_enabled() const { return grad_enabled_; }

  // Records an op's output. The node requires a gradient when any input
  // does (and gradients are enabled); only then is `backward` kept.
  VarT record(DynTensor<Scalar> value, std::initializer_list<VarT> inputs, BackwardFn backward) {
    return record(std::move(value), inputs.begin(), inputs.end(), std::move(backward));
  }
  VarT record(DynTensor<Scalar> value, const std::vector<VarT>& inputs, BackwardFn backward) {
    return record(std::move(value), inputs.data(), inputs.data() + inputs.size(), std::move(backward));
  }

  const DynTensor<Scalar>& value(VarT v) const { return node(v).value(); }
  bool requires_grad(VarT v) const { return node(v).requires_grad; }

  // The gradient buffer of v, allocated (zeros) on first use. Backward
  // functions add into it.
  DynTensor<Scalar>& grad(VarT v) {
    Node& n = node(v);
    QAWARE_CHECK(n.requires_grad, "Tape::grad: node ", v.id(), " (shape ", n.value().shape().str(),
                 ") does not require a gradient");
    return n.grad_buffer();
  }
  // The gradient buffer of v for a backward that writes every element:
  // fresh = the buffer was just allocated uninitialised (or is a Param's
  // gradient that zero_grad() left as a pending zero) and the caller MUST
  // overwrite all of it; otherwise (written before, or a Param's gradient
  // that holds values) the caller adds into it. Either way the node then
  // counts as having a gradient. A backward that writes several inputs must
  // ask for each slot just before writing it: two inputs may be the same
  // node (mul(x, x)), and the second slot is fresh only if the first was
  // never written.
  struct GradSlot {
    Scalar* data;
    bool fresh;
  };
  GradSlot grad_slot(VarT v) {
    Node& n = node(v);
    QAWARE_CHECK(n.requires_grad, "Tape::grad_slot: node ", v.id(), " (shape ", n.value().shape().str(),
                 ") does not require a gradient");
    if (n.param) {
      const bool fresh = n.param->claim_zero_grad_for_overwrite();
      return {n.param->grad().data(), fresh};
    }
    const bool fresh = !n.grad_allocated;
    if (fresh) {
      n.own_grad = DynTensor<Scalar>(n.own_value.shape());
      n.grad_allocated = true;
    }
    return {n.grad_buffer().data(), fresh};
  }
  // grad_slot(v) when v requires a gradient, else {nullptr, false}.
  GradSlot grad_slot_if_needed(VarT v) { return requires_grad(v) ? grad_slot(v) : GradSlot{nullptr, false}; }

  // Whether a gradient has been accumulated into v yet.
  bool has_grad(VarT v) const { return node(v).has_grad(); }

  // Backpropagates from a one-element `loss` (seed 1).
  void backward(VarT loss) {
    QAWARE_CHECK(value(loss).numel() == 1, "Tape::backward: the loss must have one element, got shape ",
                 value(loss).shape().str(), "; pass a seed gradient for other outputs");
    DynTensor<Scalar> seed(value(loss).shape(), Scalar(1));
    backward(loss, seed);
  }
  // Backpropagates from `out` with the given output gradient.
  void backward(VarT out, const DynTensor<Scalar>& seed) {
    Node& n = node(out);
    QAWARE_CHECK(seed.shape() == n.value().shape(), "Tape::backward: seed shape ", seed.shape().str(),
                 " does not match output shape ", n.value().shape().str());
    QAWARE_CHECK(n.requires_grad, "Tape::backward: the output does not depend on anything that requires a gradient");
    DynTensor<Scalar>& g = n.grad_buffer();
    for (Index i = 0; i < g.numel(); ++i) g[i] += seed[i];
    for (std::int32_t i = out.id(); i >= 0; --i) {
      Node& cur = nodes_[static_cast<std::size_t>(i)];
      if (!cur.backward || !cur.has_grad()) continue;
      cur.backward(*this, cur.grad_buffer());
    }
  }

  // Drops every node (values, gradients, closures). Params are untouched.
  void clear() { nodes_.clear(); }
  std::size_t size() const { return nodes_.size(); }

 private:
  struct Node {
    DynTensor<Scalar> own_value;
    DynTensor<Scalar> own_grad;
    const DynTensor<Scalar>* external_value = nullptr;  // a Param's value
    Param<Scalar>* param = nullptr;                     // the Param whose grad this is
    bool requires_grad = false;
    bool grad_allocated = false;
    BackwardFn backward;

    const DynTensor<Scalar>& value() const { return external_value ? *external_value : own_value; }
    bool has_grad() const { return param != nullptr || grad_allocated; }
    DynTensor<Scalar>& grad_buffer() {
      if (param) return param->grad();
      if (!grad_allocated) {
        own_grad = DynTensor<Scalar>::zeros(own_value.shape());
        grad_allocated = true;
      }
      return own_grad;
    }
  };

  // record()'s body, for inputs [first, last).
  VarT record(DynTensor<Scalar> value, const VarT* first, const VarT* last, BackwardFn backward) {
    bool needs = false;
    for (const VarT* v = first; v != last; ++v) {
      check_mine(*v, "record");
      needs = needs || nodes_[static_cast<std::size_t>(v->id())].requires_grad;
    }
    return push(std::move(value), nullptr, nullptr, needs, needs ? std::move(backward) : BackwardFn());
  }

  VarT push(DynTensor<Scalar> value, const DynTensor<Scalar>* ext_value, Param<Scalar>* param, bool requires_grad,
            BackwardFn backward) {
    requires_grad = requires_grad && grad_enabled_;
    if (!requires_grad) backward = nullptr;
    Node n;
    n.own_value = std::move(value);
    n.external_value = ext_value;
    n.param = requires_grad ? param : nullptr;
    n.requires_grad = requires_grad;
    n.backward = std::move(backward);
    nodes_.push_back(std::move(n));
    return VarT(this, static_cast<std::int32_t>(nodes_.size() - 1));
  }
  void check_mine(VarT v, const char* what) const {
    QAWARE_CHECK(v.valid(), "Tape::", what, ": empty Var");
    QAWARE_CHECK(&v.tape() == this, "Tape::", what, ": Var ", v.id(), " belongs to another tape");
    QAWARE_CHECK(v.id() < static_cast<std::int32_t>(nodes_.size()), "Tape::", what, ": Var ", v.id(),
                 " is stale (the tape holds ", nodes_.size(), " nodes; was it cleared?)");
  }
  Node& node(VarT v) {
    check_mine(v, "node");
    return nodes_[static_cast<std::size_t>(v.id())];
  }
  const Node& node(VarT v) const {
    check_mine(v, "node");
    return nodes_[static_cast<std::size_t>(v.id())];
  }

  std::vector<Node> nodes_;
  bool grad_enabled_ = true;
};

// Disables gradient recording on a tape for the guard's lifetime and
// restores the previous setting afterwards.
template <typename Scalar>
class NoGradGuard {
 public:
  explicit NoGradGuard(Tape<Scalar>& tape) : tape_(tape), prev_(tape.grad_enabled()) { tape.set_grad_enabled(false); }
  ~NoGradGuard() { tape_.set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  Tape<Scalar>& tape_;
  bool prev_;
};

// ---------------------------------------------------------------------------
// Var members that need the Tape definition.

template <typename Scalar>
const DynTensor<Scalar>& Var<Scalar>::value() const {
  return tape().value(*this);
}
template <typename Scalar>
bool Var<Scalar>::requires_grad() const {
  return tape().requires_grad(*this);
}
template <typename Scalar>
Scalar Var<Scalar>::item() const {
  const auto& v = value();
  QAWARE_CHECK(v.numel() == 1, "Var::item: expected one element, got shape ", v.shape().str());
  return v[0];
}
template <typename Scalar>
const DynTensor<Scalar>& Var<Scalar>::grad() const {
  return tape().grad(*this);
}

// Accumulates src into dst elementwise (dst += src), shapes equal in size.
template <typename Scalar>
void accumulate(DynTensor<Scalar>& dst, const DynTensor<Scalar>& src) {
  QAWARE_CHECK(dst.numel() == src.numel(), "accumulate: ", dst.shape().str(), " += ", src.shape().str());
  dst.flat() += src.flat();
}

}  // namespace qaware
