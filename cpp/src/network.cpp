#include "bnwasm/network.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "bnwasm/parallel.h"

namespace bnwasm {
namespace {

size_t first_non_finite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}

}  // namespace

ErrorInfo spec_error(Status status, const SpecFailure& why) {
  ErrorInfo e;
  e.status = status;
  e.argument = Argument::Spec;
  const SpecError& s = why.error;
  e.message = s.field.empty() ? s.message : s.field + " " + s.message;
  e.where = why.where;
  e.detail = s.value;
  e.has_detail = s.has_value;
  return e;
}

Network::Network(const NetworkSpec& spec) : spec_(spec) {
  const std::vector<Shape> shapes = layer_shapes(spec);
  size_t nparams = 0, nstats = 0, nfrozen = 0, ncache = 0;
  layers_.resize(spec.layers.size());
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& ls = spec.layers[i];
    const LayerDef& def = *ls.def;
    Layer& l = layers_[i];
    const std::vector<Shape> in = input_shapes(spec, shapes, i);
    l.op = def.make(ls, in.data(), in.size(), shapes[i]);
    l.op->def = &def;
    l.inputs = ls.inputs;
    l.width = static_cast<size_t>(shapes[i].size());
    l.view = def.view;
    for (int32_t p : l.inputs)
      if (p >= 0) layers_[p].consumers.push_back(static_cast<int32_t>(i));
    const bool frozen = ls.has("trainable") && ls.get("trainable") == 0;
    for (size_t k = 0; k < def.tensors.size(); ++k) {
      const TensorDef& t = def.tensors[k];
      if (t.when != nullptr && ls.get(t.when) == 0) continue;
      const Arena arena = t.statistic ? Arena::Stats : frozen ? Arena::Frozen : Arena::Params;
      Tensor x{k, 0, 1, arena, {}};
      for (int64_t d : def.tensor_shape(k, ls, in.data(), shapes[i])) {
        x.shape.push_back(static_cast<int32_t>(d));
        x.size *= static_cast<size_t>(d);
      }
      size_t& size = arena == Arena::Stats ? nstats : arena == Arena::Frozen ? nfrozen : nparams;
      x.offset = size;
      size += x.size;
      l.tensors.push_back(x);
    }
    l.cache = ncache;
    ncache += l.op->cache_size();
  }
  params_.assign(nparams, 0.0f);
  grads_.assign(nparams, 0.0f);
  moment1_.assign(nparams, 0.0f);
  if (spec.optimizer.type == OptimizerType::Adam) moment2_.assign(nparams, 0.0f);
  stats_.assign(nstats, 0.0f);
  frozen_.assign(nfrozen, 0.0f);
  frozen_grads_.assign(nfrozen, 0.0f);
  caches_.assign(ncache, 0.0f);
  // The arenas never move from here on: the ops keep pointers into them.
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    l.op->index = i;
    for (const Tensor& x : l.tensors) {
      l.op->t.push_back(tensor_data(x));
      l.op->dt.push_back(x.arena == Arena::Params   ? grads_.data() + x.offset
                         : x.arena == Arena::Frozen ? frozen_grads_.data() + x.offset
                                                    : nullptr);
      l.op->learns = l.op->learns || x.arena == Arena::Params;
    }
    l.op->cache = caches_.data() + l.cache;
    // A gradient must reach a layer's output when it, or a layer before it, learns.
    l.grad = l.op->learns;
    for (int32_t p : l.inputs) l.grad = l.grad || (p >= 0 && layers_[p].grad);
    l.in.assign(l.inputs.size(), nullptr);
    l.din.assign(l.inputs.size(), nullptr);
  }
  output_size_ = layers_.empty() ? input_size() : layers_.back().width;
  chain_.reserve(layers_.size());
  // Pieces of the Params arena for the jobs over all of it: group q of the
  // rows of every tensor (its first dimension: a dense layer's output
  // features, a convolution's filters), group after group. The pool hands
  // each thread one run of tasks, so a thread takes the same groups of every
  // tensor (up to 8 threads; more share groups), the rows whose gradients its
  // weight-gradient GEMM computed and whose weights its forward packs next:
  // they stay in its core's cache. Empty pieces stay in the list, so every
  // group has as many tasks. No piece changes a bit (the jobs work value by
  // value); without threads there are none (all_param_pieces takes the arena
  // whole).
#if BNWASM_THREADS
  constexpr size_t kRowGroups = 8;
  for (size_t q = 0; q < kRowGroups; ++q)
    for (const Layer& l : layers_)
      for (const Tensor& x : l.tensors) {
        if (x.arena != Arena::Params) continue;
        const size_t rows = x.shape.empty() ? 1 : static_cast<size_t>(x.shape[0]);
        const size_t row = rows == 0 ? 0 : x.size / rows;
        const size_t r0 = q * rows / kRowGroups, r1 = (q + 1) * rows / kRowGroups;
        param_pieces_.push_back({x.offset + r0 * row, (r1 - r0) * row});
      }
#endif
  rng_state_ = spec.seed;
}

Status Network::create(const NetworkSpec& spec, std::unique_ptr<Network>* out, ErrorInfo* error) {
  return create(network_value(spec), out, error);  // checked as a config is: the same reading
}

Status Network::create(const Value& config, std::unique_ptr<Network>* out, ErrorInfo* error) {
  NetworkSpec spec;
  SpecFailure why;
  if (!parse_network(config, &spec, &why)) {
    *error = spec_error(Status::InvalidConfig, why);
    return Status::InvalidConfig;
  }
  std::unique_ptr<Network> net(new Network(spec));
  net->init_parameters();
  *out = std::move(net);
  return Status::Ok;
}

void Network::init_parameters() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    // The layer this one feeds, looking past batch norm (which keeps the
    // activation's scale): what 'auto' init picks its fans by.
    InitInfo info;
    const Layer* next = &layers_[i];
    while (next->consumers.size() == 1) {
      next = &layers_[next->consumers[0]];
      info.activation = next->op->def;
      if (next->op->statistics() == nullptr) break;
    }
    layers_[i].op->init(info, &rng_state_);
  }
  ++version_;
}

Status Network::fail(Status s, std::string message, Argument argument, int64_t index,
                     double value) {
  error_ = ErrorInfo();
  error_.status = s;
  error_.argument = argument;
  error_.message = std::move(message);
  error_.index = index;
  error_.value = value;
  return s;
}

float* Network::tensor_data(const Tensor& x) {
  float* base = x.arena == Arena::Params ? params_.data() : x.arena == Arena::Stats ? stats_.data() : frozen_.data();
  return base + x.offset;
}

const float* Network::network_output() const {
  return layers_.empty() ? input_.data() : layers_.back().act;
}

Statistics* Network::statistics_of(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size()) return nullptr;
  return layers_[layer].op->statistics();
}

// ---- staging buffers ------------------------------------------------------------

float* Network::input(size_t rows) {
  if (input_.size() < rows * input_size()) input_.resize(rows * input_size());
  return input_.data();
}
int32_t* Network::labels(size_t rows) {
  if (labels_.size() < rows) labels_.resize(rows);
  return labels_.data();
}
float* Network::targets(size_t rows) {
  if (targets_.size() < rows * output_size_) targets_.resize(rows * output_size_);
  return targets_.data();
}
float* Network::output(size_t rows) {
  if (output_.size() < rows * output_size_) output_.resize(rows * output_size_);
  return output_.data();
}
uint32_t* Network::indices(size_t n) {
  if (indices_.size() < n) indices_.resize(n);
  return indices_.data();
}

void Network::ensure_rows(size_t rows) {
  if (rows <= rows_) return;
  size_t scratch = 0;
  for (Layer& l : layers_) {
    if (!l.view) {
      l.act_store.resize(rows * l.width);
      l.act = l.act_store.data();
      if (l.grad) {
        l.dact_store.resize(rows * l.width);
        l.dact = l.dact_store.data();
      }
    }
    l.op->reserve(rows);
    scratch = std::max(scratch, l.op->scratch_size(rows));
  }
  loss_grad_.resize(rows * output_size_);
  scratch_.resize(scratch);
  rows_ = rows;
}

void Network::shuffle(size_t n) {
  uint32_t* idx = indices(n);
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<uint32_t>(i);
  for (size_t i = n; i > 1; --i) {  // Fisher-Yates
    const size_t j = static_cast<size_t>(next_uniform(&rng_state_) * static_cast<double>(i));
    std::swap(idx[i - 1], idx[j]);
  }
}

// ---- forward and backward ----------------------------------------------------------

Pass Network::pass(size_t B, bool train) const {
  Pass p;
  p.B = B;
  p.train = train;
  p.scratch = const_cast<float*>(scratch_.data());
  p.version = version_;
  p.step = step_;
  p.seed = spec_.seed;
  p.batch_norm = batch_norm_;
  return p;
}

void Network::bind(const float* x) {
  for (Layer& l : layers_) {
    for (size_t k = 0; k < l.inputs.size(); ++k) {
      const int32_t p = l.inputs[k];
      l.in[k] = p < 0 ? x : layers_[p].act;
      l.din[k] = p >= 0 && layers_[p].grad ? layers_[p].dact : nullptr;
    }
    if (l.view) {
      // Its output is its input's values: the same buffer (never written
      // through it), and the same gradient buffer, which its consumers add into.
      l.act = const_cast<float*>(l.in[0]);
      l.dact = l.din[0];
    }
  }
}

void Network::forward(const float* x, size_t B, bool train, size_t last) {
  if (layers_.empty()) return;  // the output is x itself
  bind(x);
  last = std::min(last, layers_.size() - 1);
  Pass p = pass(B, train);
  std::vector<const LayerOp*>& chain = chain_;  // reserved: nothing allocates per call
  for (size_t i = 0; i <= last; ++i) {
    Layer& l = layers_[i];
    if (l.view) continue;
    p.in = l.in.data();
    p.out = l.act;
    if (!train) {
      // The layers after this one that inference may run with it: each the
      // only consumer of the one before, which it alone takes as input. The
      // last of them must be written: it stops at `last`.
      chain.clear();
      for (size_t j = i + 1; j <= last; ++j) {
        const Layer& n = layers_[j];
        if (n.view || n.inputs.size() != 1 || n.inputs[0] != static_cast<int32_t>(j - 1) ||
            layers_[j - 1].consumers.size() != 1)
          break;
        chain.push_back(n.op.get());
      }
      const size_t span = chain.empty() ? 0 : l.op->fusion(chain.data(), chain.size());
      if (span > 0) {
        p.out = layers_[i + span].act;
        l.op->forward_fused(p, chain.data(), span);
        i += span;
        continue;
      }
    }
    l.op->forward(p);
  }
}

void Network::backward(size_t B) {
  // The loss wrote d(loss)/d(output) into the last layer's dact (which a last
  // flatten shares with its input). Each layer adds into its inputs'
  // gradients, so the others start at zero. Without layers there is nothing to do.
  if (layers_.empty()) return;
  const float* loss_grad = layers_.back().dact;
  parallel_zero(layers_.size(), [&](size_t i) {
    const Layer& l = layers_[i];
    const bool cleared = l.grad && !l.view && l.dact != loss_grad;
    return std::pair<float*, size_t>(l.dact, cleared ? B * l.width : 0);
  });
  Pass p = pass(B, true);
  for (size_t i = layers_.size(); i-- > 0;) {
    Layer& l = layers_[i];
    if (l.view || !l.grad) continue;
    p.in = l.in.data();
    p.out = l.act;
    p.dout = l.dact;
    p.din = l.din.data();
    l.op->backward(p);
  }
}

// ---- optimizer ----------------------------------------------------------------------------

// The float constants of Adam's step t, as f32_adam takes them.
struct AdamStep {
  float b1, b2, c1, c2, step_size, inv_sqrt_bc2, eps, wd;
  AdamStep(const OptimizerSpec& o, uint64_t t) {
    // torch.optim.Adam: step_size = lr / (1 - beta1^t);
    // denom = sqrt(v) / sqrt(1 - beta2^t) + eps; p -= step_size * m / denom.
    const double bc1 = 1.0 - pow_int(o.beta1, t);
    const double bc2 = 1.0 - pow_int(o.beta2, t);
    step_size = static_cast<float>(o.learning_rate / bc1);
    inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
    b1 = static_cast<float>(o.beta1);
    b2 = static_cast<float>(o.beta2);
    // 1 - beta in double, then rounded: 1.0f - 0.999f would carry 0.999f's
    // rounding error (1.3e-5 relative) into every update.
    c1 = static_cast<float>(1.0 - o.beta1);
    c2 = static_cast<float>(1.0 - o.beta2);
    eps = static_cast<float>(o.epsilon);
    wd = static_cast<float>(o.weight_decay);
  }
};

#if !BNWASM_THREADS
// Without threads, the arena in one piece (and the module as small as before).
template <class F>
bool Network::all_param_pieces(F&& f) const {
  return params_.empty() || f(size_t(0), params_.size());
}

uint32_t Network::param_peak(const std::vector<float>& x) const {
  return f32_abs_peak(x.data(), x.size());
}
#else
template <class F>
bool Network::all_param_pieces(F&& f) const {
  std::atomic<bool> all{true};
  parallel_for(param_pieces_.size(), [&](size_t t, size_t) {
    const Piece& p = param_pieces_[t];
    if (p.size != 0 && !f(p.offset, p.size)) all.store(false, std::memory_order_relaxed);
  });
  return all.load();
}

uint32_t Network::param_peak(const std::vector<float>& x) const {
  // The pieces' peaks max-ed as they finish. (SGD has no second moments:
  // an empty array.)
  std::atomic<uint32_t> peak{0};
  if (x.empty()) return 0;
  all_param_pieces([&](size_t at, size_t n) {
    fetch_max(peak, f32_abs_peak(x.data() + at, n));
    return true;
  });
  return peak.load();
}
#endif

// One pass of the update over every parameter, piece by piece. With write
// false it only checks that every new value would be finite, so a step that
// would diverge is refused before anything is written.
bool Network::optimizer_pass(bool write) {
  const OptimizerSpec& o = spec_.optimizer;
  const AdamStep a(o, step_ + 1);  // SGD reads none of it
  float* p = params_.data();
  float* m = moment1_.data();
  float* v = moment2_.data();
  const float* g = grads_.data();
  return all_param_pieces([&](size_t at, size_t n) {
    if (o.type == OptimizerType::Sgd)
      return f32_sgd(p + at, m + at, g + at, n, static_cast<float>(o.learning_rate),
                     static_cast<float>(o.momentum), a.wd, o.nesterov, write);
    return f32_adam(p + at, m + at, v + at, g + at, n, a.b1, a.b2, a.c1, a.c2, a.step_size,
                    a.inv_sqrt_bc2, a.eps, a.wd, write);
  });
}

// Whether this step's update is sure to leave every parameter and moment
// finite, so that train_step can take it without first checking it in a pass
// of its own; if so, next gets the bounds after it. From bounds_ (valid while
// version_ is the one the last update left: whatever else writes the
// parameters bumps version_, and a new or loaded network has none) and this
// step's largest |gradient|. Each bound follows one operation of f32_sgd /
// f32_adam with the magnitudes of its operands, in double, and every
// intermediate is under kSafe, far below FLT_MAX (3.4e38): so no float
// operation overflows even after its rounding. None makes a NaN either: Adam's
// denominator is at least eps > 0 (no 0/0), v' = b2 v + c2 d d is >= 0 when v
// is (no sqrt of a negative; v >= 0 held when the bounds were measured, after a
// checked update), and without infinities there is no inf - inf or 0 * inf.
// The float results round (2^-24 relative, 2^-149 absolute, at most a few
// roundings per value and step), so the bounds carried to the next step grow
// by kSlack more. They are loose (an update of at most step_size |m'| / eps):
// when they pass kSafe the step is checked and they are measured again.
bool Network::update_is_bounded(float grad_peak, double next[3]) const {
  constexpr double kSafe = 1e30, kSlack = 1e-5, kTiny = 1e-30;
  if (bounds_version_ != version_) return false;
  const OptimizerSpec& o = spec_.optimizer;
  const double P = bounds_[0], G = grad_peak;
  const double wd = std::fabs(static_cast<float>(o.weight_decay));
  const double D = G + wd * P;  // |g + wd p|
  double step;                  // |p' - p|
  if (o.type == OptimizerType::Sgd) {
    const double lr = std::fabs(static_cast<float>(o.learning_rate));
    const double mu = std::fabs(static_cast<float>(o.momentum));
    next[1] = mu != 0.0 ? mu * bounds_[1] + D : bounds_[1];  // |buf'|
    next[2] = 0.0;
    const double d = mu == 0.0 ? D : o.nesterov ? D + mu * next[1] : next[1];  // |d'|
    if (!(d < kSafe)) return false;
    step = lr * d;
  } else {
    const AdamStep a(o, step_ + 1);
    const auto unit = [](float x) { return x >= 0.0f && x <= 1.0f; };
    if (!(a.eps > 0.0f) || !unit(a.b1) || !unit(a.b2) || !unit(a.c1) || !unit(a.c2) ||
        !(a.inv_sqrt_bc2 < kSafe) || !(std::fabs(a.step_size) < kSafe))
      return false;
    next[1] = a.b1 * bounds_[1] + a.c1 * D;  // |m'|
    next[2] = a.b2 * bounds_[2] + a.c2 * D * D;  // v'
    if (!(std::sqrt(next[2]) * a.inv_sqrt_bc2 + a.eps < kSafe)) return false;  // the denominator
    const double scaled = std::fabs(a.step_size) * next[1];  // |step_size m'|
    if (!(scaled < kSafe)) return false;
    step = scaled / a.eps;  // over a denominator of at least eps
  }
  next[0] = P + step;
  for (int k = 0; k < 3; ++k) next[k] = next[k] * (1.0 + kSlack) + kTiny;
  return D < kSafe && next[0] < kSafe && next[1] < kSafe && next[2] < kSafe;
}

// bounds_ from the parameters and moments themselves (after a checked update).
void Network::measure_bounds() {
  const std::vector<float>* arrays[3] = {&params_, &moment1_, &moment2_};
  for (int k = 0; k < 3; ++k) bounds_[k] = from_peak_bits(param_peak(*arrays[k]));
}

bool Network::update_running_statistics(size_t B) {
  // Every check before any update, so a refused step changes nothing. A frozen
  // batch norm keeps its running statistics.
  for (const Layer& l : layers_)
    if (const Statistics* s = l.op->statistics(); s != nullptr && !s->frozen(batch_norm_) && !s->update_ok(B))
      return false;
  for (Layer& l : layers_)
    if (Statistics* s = l.op->statistics(); s != nullptr && !s->frozen(batch_norm_)) s->update(B);
  return true;
}

// ---- public operations ------------------------------------------------------------------------

Status Network::check_inputs(const float* x, size_t rows) {
  const size_t n = rows * input_size();
  if (f32_all_finite(x, n)) return Status::Ok;
  const size_t i = first_non_finite(x, n);
  return fail(Status::NonFiniteInput, "expected a finite number", Argument::Input,
              static_cast<int64_t>(i), x[i]);
}

// The staged labels (in range) or targets (finite) of n rows.
Status Network::check_targets(size_t n) {
  if (spec_.loss == LossType::SoftmaxCrossEntropy) {
    if (labels_.size() < n) return fail(Status::BadArgument, "fewer labels staged than rows");
    for (size_t i = 0; i < n; ++i)
      if (labels_[i] < 0 || static_cast<size_t>(labels_[i]) >= output_size_)
        return fail(Status::LabelOutOfRange,
                    "labels must be integers in [0, " + std::to_string(output_size_) + ")",
                    Argument::Target, static_cast<int64_t>(i), labels_[i]);
    return Status::Ok;
  }
  const size_t count = n * output_size_;
  if (targets_.size() < count) return fail(Status::BadArgument, "fewer targets staged than rows");
  if (f32_all_finite(targets_.data(), count)) return Status::Ok;
  const size_t i = first_non_finite(targets_.data(), count);
  return fail(Status::NonFiniteInput, "expected a finite number", Argument::Target,
              static_cast<int64_t>(i), targets_[i]);
}

Status Network::check_batch(size_t n) {
  if (input_.size() < n * input_size()) return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  return check_targets(n);
}

size_t Network::min_training_batch() const {
  for (const Layer& l : layers_)
    if (const Statistics* s = l.op->statistics(); s != nullptr && !s->frozen(batch_norm_)) return 2;
  return 1;
}

Status Network::check_training_batch(size_t B) {
  const size_t least = min_training_batch();
  if (B >= least) return Status::Ok;
  return fail(Status::BatchTooSmall,
              least == 2 ? "a training mini-batch needs at least 2 examples (batch norm's variance "
                           "over one example is meaningless), got " + std::to_string(B)
                         : "a training mini-batch needs at least 1 example, got 0",
              Argument::None, -1, static_cast<double>(B));
}

Status Network::train_step(size_t B, double* loss) {
  if (Status s = check_training_batch(B); s != Status::Ok) return s;
  if (Status s = check_batch(B); s != Status::Ok) return s;

  ensure_rows(B);
  forward(input_.data(), B, true);
  // Without layers the logits are the input, and their gradient reaches nothing.
  const float* logits = network_output();
  float* dlogits = !layers_.empty() && layers_.back().dact != nullptr ? layers_.back().dact : loss_grad_.data();
  const double l =
      spec_.loss == LossType::SoftmaxCrossEntropy
          ? softmax_crossentropy_forward_backward(dlogits, logits, labels_.data(), B, output_size_)
          : mse_forward_backward(dlogits, logits, targets_.data(), B, output_size_);
  const char* advice = "; nothing was changed. Try a lower learning rate.";
  if (!std::isfinite(l))
    return fail(Status::Diverged, std::string("the training loss is ") +
                                      (std::isnan(l) ? "NaN" : "Infinity") + advice);
  // memset, not std::fill: at -Oz the latter stays a scalar loop over every gradient. A
  // network without parameters has no pieces (data() may be null, which memset may not take).
  all_param_pieces([&](size_t at, size_t n) {
    std::memset(grads_.data() + at, 0, n * sizeof(float));
    return true;
  });
  // A frozen layer's gradients are thrown away; cleared so they never grow unbounded.
  if (!frozen_grads_.empty()) std::memset(frozen_grads_.data(), 0, frozen_grads_.size() * sizeof(float));
  backward(B);
  const uint32_t grad_peak = param_peak(grads_);
  if (grad_peak >= kNotFinite)
    return fail(Status::Diverged, std::string("a gradient is not finite") + advice);
  // Both checks run before either writes, so a refused step changes nothing.
  // The update's needs a pass of its own unless the bounds prove it finite.
  double next[3];
  const bool bounded = update_is_bounded(from_peak_bits(grad_peak), next);
  const bool params_ok = bounded || optimizer_pass(false);
  if (!params_ok)
    return fail(Status::Diverged,
                std::string("the update would make a parameter non-finite") + advice);
  if (!update_running_statistics(B))
    return fail(Status::Diverged,
                std::string("a batch-norm statistic of this batch is not finite") + advice);
  optimizer_pass(true);
  if (bounded)
    std::copy(next, next + 3, bounds_);
  else
    measure_bounds();
  ++step_;
  ++version_;
  bounds_version_ = version_;
  *loss = l;
  return Status::Ok;
}

Status Network::predict_one() {
  if (Status s = check_inputs(input(1), 1); s != Status::Ok) return s;
  ensure_rows(1);
  forward(input_.data(), 1, false);
  float* y = output(1);
  if (spec_.loss == LossType::SoftmaxCrossEntropy)
    softmax_forward(y, network_output(), 1, output_size_);
  else
    std::memcpy(y, network_output(), output_size_ * sizeof(float));
  return Status::Ok;
}

Status Network::predict_batch(size_t n) {
  if (n == 0) return Status::Ok;
  if (input_.size() < n * input_size())
    return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  ensure_rows(n);
  forward(input_.data(), n, false);
  float* y = output(n);
  if (spec_.loss == LossType::SoftmaxCrossEntropy)
    softmax_forward(y, network_output(), n, output_size_);
  else
    std::memcpy(y, network_output(), n * output_size_ * sizeof(float));
  return Status::Ok;
}

Status Network::evaluate(size_t n, double* loss_sum, size_t* correct) {
  *loss_sum = 0;
  *correct = 0;
  if (n == 0) return Status::Ok;
  if (Status s = check_batch(n); s != Status::Ok) return s;
  ensure_rows(n);
  forward(input_.data(), n, false);
  const float* z = network_output();
  if (spec_.loss == LossType::SoftmaxCrossEntropy)
    *loss_sum = softmax_crossentropy_forward(correct, z, labels_.data(), n, output_size_) * n;
  else
    *loss_sum = mse_forward(z, targets_.data(), n, output_size_) * n;
  return Status::Ok;
}

std::vector<TensorView> Network::tensors() {
  std::vector<TensorView> out;
  for (size_t i = 0; i < layers_.size(); ++i)
    for (const Tensor& x : layers_[i].tensors) {
      const TensorDef& t = spec_.layers[i].def->tensors[x.def];
      if (t.hidden) continue;
      out.push_back({static_cast<int32_t>(i), t.name, x.shape, tensor_data(x), x.size, x.arena == Arena::Params});
    }
  return out;
}

void Network::weights_changed() {
  ++version_;
  for (Layer& l : layers_)
    if (Statistics* s = l.op->statistics()) s->changed();
}

Status Network::forward_to(size_t n, int32_t layer) {
  if (layers_.empty())
    return fail(Status::BadArgument, "the network has no layers (its output is its input), got layer " +
                                         std::to_string(layer));
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size())
    return fail(Status::BadArgument, "layer must be an integer in [0, " +
                                         std::to_string(layers_.size()) + "), got " +
                                         std::to_string(layer));
  if (n == 0) return fail(Status::BadArgument, "no rows to run");
  if (input_.size() < n * input_size())
    return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  ensure_rows(n);
  forward(input_.data(), n, false, static_cast<size_t>(layer));
  return Status::Ok;
}

const float* Network::layer_output(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size()) return nullptr;
  return layers_[layer].act;
}

size_t Network::layer_width(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size()) return 0;
  return layers_[layer].width;
}

size_t Network::channels(int32_t layer) const {
  const Statistics* s = statistics_of(layer);
  return s == nullptr ? 0 : s->channels();
}

Status Network::population_check(size_t n) {
  // Checked for every layer before the first changes: the last one would see it too late.
  for (size_t i = 0; i < layers_.size(); ++i)
    if (const Statistics* s = layers_[i].op->statistics(); s != nullptr && s->unbiased() && n < 2)
      return fail(Status::BatchTooSmall,
                  "x has " + std::to_string(n) + " example" + (n == 1 ? "" : "s") +
                      "; the unbiased running variance of layer " + std::to_string(i) +
                      " needs at least 2",
                  Argument::None, -1, static_cast<double>(n));
  return Status::Ok;
}

Status Network::population_begin(int32_t layer) {
  const Statistics* s = statistics_of(layer);
  if (s == nullptr)
    return fail(Status::BadArgument,
                "layer " + std::to_string(layer) + " is not a batch-norm layer");
  pop_layer_ = layer;
  pop_count_ = 0;
  pop_mean_.assign(s->channels(), 0.0);
  pop_m2_.assign(s->channels(), 0.0);
  return Status::Ok;
}

Status Network::population_add(size_t n) {
  if (pop_layer_ < 0) return fail(Status::BadArgument, "population_begin was not called");
  if (n == 0) return Status::Ok;
  if (input_.size() < n * input_size())
    return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  // The layer's input: the staged rows themselves, or its producer's output in inference mode.
  const int32_t producer = layers_[pop_layer_].inputs[0];
  const float* in = input_.data();
  if (producer >= 0) {
    ensure_rows(n);
    forward(input_.data(), n, false, static_cast<size_t>(producer));
    in = layers_[producer].act;
  }
  // This chunk's mean and sum of squared deviations in float64, two passes,
  // then Chan et al.'s pairwise merge into the running totals.
  // Channel c of row b is the run of S values at (b * C + c) * S.
  const Statistics& st = *layers_[pop_layer_].op->statistics();
  const size_t C = st.channels(), S = st.positions();
  const double nb = static_cast<double>(n * S);
  for (size_t c = 0; c < C; ++c) {
    double sum = 0;
    for (size_t b = 0; b < n; ++b)
      for (size_t i = 0; i < S; ++i) sum += in[(b * C + c) * S + i];
    const double mb = sum / nb;
    double m2b = 0;
    for (size_t b = 0; b < n; ++b)
      for (size_t i = 0; i < S; ++i) {
        const double dv = in[(b * C + c) * S + i] - mb;
        m2b += dv * dv;
      }
    const double na = pop_count_, total = na + nb;
    const double delta = mb - pop_mean_[c];
    pop_mean_[c] += delta * nb / total;
    pop_m2_[c] += m2b + delta * delta * na * nb / total;
  }
  pop_count_ += nb;
  return Status::Ok;
}

Status Network::population_end() {
  if (pop_layer_ < 0) return fail(Status::BadArgument, "population_begin was not called");
  Statistics& st = *layers_[pop_layer_].op->statistics();
  const int32_t layer = pop_layer_;
  pop_layer_ = -1;
  if (pop_count_ < (st.unbiased() ? 2 : 1))
    return fail(Status::BatchTooSmall, "population statistics need at least " +
                                           std::string(st.unbiased() ? "2 examples" : "1 example") +
                                           " for layer " + std::to_string(layer));
  const double denom = st.unbiased() ? pop_count_ - 1 : pop_count_;
  std::vector<double> var(pop_m2_.size());
  for (size_t c = 0; c < var.size(); ++c) var[c] = pop_m2_[c] / denom;
  st.set(pop_mean_.data(), var.data());
  weights_changed();
  return Status::Ok;
}

const float* Network::batch_mean(int32_t layer) const {
  const Statistics* s = statistics_of(layer);
  return s == nullptr ? nullptr : s->batch_mean();
}
const float* Network::batch_var(int32_t layer) const {
  const Statistics* s = statistics_of(layer);
  return s == nullptr ? nullptr : s->batch_var();
}

std::unique_ptr<Network> Network::folded() const {
  NetworkSpec spec = spec_;
  spec.optimizer = OptimizerSpec();
  spec.optimizer.type = OptimizerType::Sgd;
  spec.optimizer.learning_rate = 0.01;
  // A batch norm folds into the foldable layer it alone reads, when it is that
  // layer's only consumer. The folded layer takes the batch norm's place in the
  // graph: its name, and every reference to it.
  const size_t n = layers_.size();
  std::vector<int32_t> folds_into(n, -1);  // batch norm -> the layer it folds into
  // Bytes, not vector<bool>: its bit-packed code is ~0.8 KB of the wasm for two flag lists.
  std::vector<uint8_t> folds(n, 0);  // layer -> a batch norm folds into it
  for (size_t i = 0; i < n; ++i) {
    const Layer& l = layers_[i];
    if (l.op->statistics() == nullptr || l.inputs.size() != 1 || l.inputs[0] < 0) continue;
    const int32_t p = l.inputs[0];
    if (spec_.layers[p].def->foldable && layers_[p].consumers.size() == 1) {
      folds_into[i] = p;
      folds[p] = 1;
    }
  }
  std::vector<int32_t> index(n, -1);  // old layer -> new layer
  std::vector<size_t> source;         // new layer -> old layer
  spec.layers.clear();
  for (size_t i = 0; i < n; ++i) {
    if (folds_into[i] >= 0) {
      index[i] = index[folds_into[i]];
      // The folded layer answers to the batch norm's name, which later layers name.
      if (!spec_.layers[i].name.empty()) spec.layers[index[i]].name = spec_.layers[i].name;
      continue;
    }
    LayerSpec ls = spec_.layers[i];
    if (folds[i]) ls.set("useBias", 1);
    index[i] = static_cast<int32_t>(spec.layers.size());
    spec.layers.push_back(ls);
    source.push_back(i);
  }
  for (size_t j = 0; j < spec.layers.size(); ++j) {
    LayerSpec& ls = spec.layers[j];
    const Layer& from = layers_[source[j]];
    // Inputs by name where the config named them; a sequential run stays implicit
    // when its producer is still the previous layer.
    ls.inputs.clear();
    for (int32_t p : from.inputs) ls.inputs.push_back(p < 0 ? -1 : index[p]);
    const bool implicit = ls.inputs.size() == 1 && ls.inputs[0] == static_cast<int32_t>(j) - 1;
    if (!spec_.layers[source[j]].input_names.empty() || !implicit) {
      ls.input_names.clear();
      for (int32_t p : ls.inputs) {
        if (p >= 0 && spec.layers[p].name.empty()) spec.layers[p].name = "layer" + std::to_string(p);
        ls.input_names.push_back(p < 0 ? "input" : spec.layers[p].name);
      }
    }
  }
  SpecFailure why;
  NetworkSpec checked;
  if (!validate_network(spec, &checked, &why)) return nullptr;  // unreachable for a valid network
  std::unique_ptr<Network> net(new Network(checked));
  for (size_t j = 0; j < net->layers_.size(); ++j) {
    const size_t i = source[j];
    const Layer& from = layers_[i];
    Layer& to = net->layers_[j];
    if (!folds[i]) {
      // Every tensor as it is (the same layer type, so the same tensors).
      for (size_t k = 0; k < from.tensors.size(); ++k)
        std::copy_n(from.op->t[k], from.tensors[k].size, to.op->t[k]);
      if (const Statistics* s = from.op->statistics()) to.op->statistics()->tracked = s->tracked;
      continue;
    }
    // A foldable layer's weight is (units, fan_in) and its bias (units): per
    // output unit or filter, over the weights that feed it.
    const Statistics& bn = *layers_[from.consumers[0]].op->statistics();
    const size_t units = static_cast<size_t>(from.tensors[0].shape[0]);
    const size_t fan_in = from.tensors[0].size / units;
    const float* w = from.op->t[0];
    const float* bias = from.tensors.size() > 1 ? from.op->t[1] : nullptr;
    for (size_t u = 0; u < units; ++u) {
      double scale, mean, beta;
      bn.fold_terms(u, &scale, &mean, &beta);
      for (size_t k = 0; k < fan_in; ++k)
        to.op->t[0][u * fan_in + k] = static_cast<float>(w[u * fan_in + k] * scale);
      const double b = bias != nullptr ? bias[u] : 0.0;
      to.op->t[1][u] = static_cast<float>((b - mean) * scale + beta);
    }
  }
  ++net->version_;
  return net;
}

int64_t Network::batches_tracked(int32_t layer) const {
  const Statistics* s = statistics_of(layer);
  return s == nullptr ? -1 : static_cast<int64_t>(s->tracked);
}
Status Network::set_batches_tracked(int32_t layer, uint64_t n) {
  Statistics* s = statistics_of(layer);
  if (s == nullptr)
    return fail(Status::BadArgument, "layer " + std::to_string(layer) + " is not batch norm");
  s->tracked = n;
  weights_changed();  // bias correction's uncorrected average depends on the count
  return Status::Ok;
}

}  // namespace bnwasm
