// Networks as graphs: layers that name their inputs, `add` (a residual
// connection), a layer read by two others. Backward must add each consumer's
// gradient into a layer's; the checks are finite differences of the training
// loss, a sequential network written both ways, folding, save/load, and the
// configs a graph can get wrong.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/network.h"
#include "gradcheck.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

LayerSpec Layer(const char* type, const char* name = "", std::vector<std::string> inputs = {}) {
  LayerSpec l = LayerSpec::of(type);
  l.name = name;
  l.input_names = std::move(inputs);
  return l;
}

LayerSpec Conv(int filters, int kernel, int stride, int pad, const char* name = "",
               std::vector<std::string> inputs = {}) {
  LayerSpec l = Layer("conv2d", name, std::move(inputs));
  l.set("filters", filters).set("useBias", 0);
  for (size_t k = 0; k < 2; ++k) l.set("kernelSize", kernel, k).set("stride", stride, k);
  for (size_t k = 1; k <= 4; ++k) l.set("padding", pad, k);
  return l;
}

LayerSpec Dense(int units, const char* name = "", std::vector<std::string> inputs = {}) {
  return Layer("dense", name, std::move(inputs)).set("units", units);
}

// A residual network in the shape of a ResNet, small: a stem, a block whose
// skip is its input, a block that halves the image with a 1x1 stride-2 conv
// on its skip, global pooling and a dense head. `act` is the activation (tanh
// for gradient checks: no kinks within a finite difference's step).
NetworkSpec Residual(const char* act, OptimizerSpec opt) {
  NetworkSpec s;
  s.input_channels = 2;
  s.input_height = s.input_width = 6;
  s.input_size = 72;
  s.layers = {
      Conv(4, 3, 1, 1, "stem"),  Layer("batchNorm"),          Layer(act, "x"),
      Conv(4, 3, 1, 1),          Layer("batchNorm"),          Layer(act),
      Conv(4, 3, 1, 1),          Layer("batchNorm", "y"),     Layer("add", "", {"x", "y"}),
      Layer(act, "z"),           Conv(6, 3, 2, 1),            Layer("batchNorm"),
      Layer(act),                Conv(6, 3, 1, 1),            Layer("batchNorm", "w"),
      Conv(6, 1, 2, 0, "skip", {"z"}), Layer("batchNorm", "s"), Layer("add", "", {"s", "w"}),
      Layer(act),                Layer("globalAvgPool"),      Dense(3),
  };
  s.optimizer = opt;
  s.seed = 17;
  return s;
}

OptimizerSpec Sgd(double lr) {
  OptimizerSpec o;
  o.type = OptimizerType::Sgd;
  o.learning_rate = lr;
  return o;
}

std::unique_ptr<Network> Make(const NetworkSpec& spec) {
  std::unique_ptr<Network> net;
  ErrorInfo error;
  EXPECT_EQ(Network::create(spec, &net, &error), Status::Ok) << error.where << ": " << error.message;
  return net;
}

void Stage(Network& net, const std::vector<float>& x, const std::vector<int32_t>& y) {
  std::copy(x.begin(), x.end(), net.input(y.size()));
  std::copy(y.begin(), y.end(), net.labels(y.size()));
}

// The training loss of a batch (mini-batch statistics) at the network's weights,
// without changing them: a step at learning rate 0.
double Loss(Network& net, const std::vector<float>& x, const std::vector<int32_t>& y) {
  Stage(net, x, y);
  double loss = 0;
  EXPECT_EQ(net.train_step(y.size(), &loss), Status::Ok) << net.last_error().message;
  return loss;
}

void CopyWeights(Network& from, Network& to) {
  auto a = from.tensors(), b = to.tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) std::copy_n(a[k].data, a[k].size, b[k].data);
  to.weights_changed();
}

// Every parameter's gradient against finite differences of the training loss.
// One SGD step at learning rate 1 from weights p leaves p - g, so g is read off
// as their difference (float32: off by at most u |p|, added to the tolerance).
// `spec(lr)` is the network with SGD at that learning rate. Returns how many
// parameters were checked.
size_t ExpectGradientsMatchFiniteDifferences(NetworkSpec (*spec)(double), const std::vector<int32_t>& y,
                                             uint64_t seed) {
  auto probe = Make(spec(0));
  auto step = Make(spec(1));
  EXPECT_NE(probe, nullptr);
  EXPECT_NE(step, nullptr);
  if (probe == nullptr || step == nullptr) return 0;
  Rng rng(seed);
  const size_t B = y.size();
  const std::vector<float> x = rng.normal_vec(B * probe->input_size(), 0, 1);
  CopyWeights(*probe, *step);
  const std::vector<TensorView> before = probe->tensors();
  Stage(*step, x, y);
  double loss = 0;
  EXPECT_EQ(step->train_step(B, &loss), Status::Ok) << step->last_error().message;
  const std::vector<TensorView> after = step->tensors();
  size_t checked = 0;
  for (size_t k = 0; k < before.size(); ++k) {
    if (!before[k].trainable) continue;
    const TensorView& t = before[k];
    std::vector<float> analytic(t.size);
    std::vector<double> tol(t.size);
    for (size_t i = 0; i < t.size; ++i) analytic[i] = t.data[i] - after[k].data[i];
    const std::vector<double> numeric = numeric_gradient(
        [&] {
          probe->weights_changed();
          return Loss(*probe, x, y);
        },
        t.data, t.size);
    probe->weights_changed();
    for (size_t i = 0; i < t.size; ++i)
      // The loss (about 1) carries float32 rounding of ~10 u; over the 2h step
      // that is ~4e-5, doubled; the recovered gradient is off by u |p|.
      tol[i] = 8e-5 + kU * 2 * std::fabs(t.data[i]) + kRtol * std::fabs(numeric[i]);
    EXPECT_TRUE(AllNear("layer " + std::to_string(t.layer) + " " + t.name, numeric, analytic.data(), tol));
    checked += t.size;
  }
  return checked;
}

// A layer read by two others (x: the second conv and the first add; z: the
// second block's conv and its skip) gets both consumers' gradients or fails.
TEST(GraphNetwork, GradientsOfAResidualNetworkMatchFiniteDifferences) {
  const size_t checked = ExpectGradientsMatchFiniteDifferences(
      [](double lr) { return Residual("tanh", Sgd(lr)); }, {0, 2, 1, 2}, 901);
  EXPECT_GT(checked, 800u);
}

// Two branches side by side: concat's gradient goes back to each branch's
// channels, and the input three layers read gets all three gradients.
NetworkSpec Inception(double lr) {
  NetworkSpec s;
  s.input_channels = 2;
  s.input_height = s.input_width = 5;
  s.input_size = 50;
  s.layers = {Conv(3, 3, 1, 1, "a"),  Layer("batchNorm"),  Layer("tanh", "x"),
              Conv(2, 1, 1, 0, "p", {"x"}), Conv(3, 3, 1, 1, "q", {"x"}), Layer("batchNorm", "r"),
              Layer("concat", "", {"p", "r", "x"}), Layer("tanh"), Conv(2, 3, 2, 0),
              Layer("globalAvgPool"), Dense(3)};
  s.optimizer = Sgd(lr);
  s.seed = 23;
  return s;
}

TEST(GraphNetwork, GradientsThroughConcatMatchFiniteDifferences) {
  auto net = Make(Inception(0));
  ASSERT_NE(net, nullptr);
  EXPECT_EQ(net->layer_width(6), size_t(8 * 25));  // 2 + 3 + 3 channels of 5x5
  EXPECT_GT(ExpectGradientsMatchFiniteDifferences(Inception, {2, 0, 1, 1}, 904), 250u);
}

// A chain written with explicit inputs (every name spelled out, 'input' for
// the network's input) is the same network as the chain written as a list:
// the same weights, the same training, bit for bit.
TEST(GraphNetwork, ExplicitInputsOfAChainAreTheImplicitOnes) {
  NetworkSpec implicit;
  implicit.input_size = 5;
  implicit.layers = {Dense(7), Layer("batchNorm"), Layer("relu"), Dense(3)};
  implicit.optimizer.learning_rate = 0.01;
  NetworkSpec explicit_ = implicit;
  const char* names[] = {"a", "b", "c", "d"};
  for (size_t i = 0; i < 4; ++i) {
    explicit_.layers[i].name = names[i];
    explicit_.layers[i].input_names = {i == 0 ? "input" : names[i - 1]};
  }
  auto a = Make(implicit), b = Make(explicit_);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Rng rng(902);
  for (int s = 0; s < 4; ++s) {
    const std::vector<float> x = rng.normal_vec(8 * 5, 0, 1);
    const std::vector<int32_t> y = {0, 1, 2, 0, 1, 2, 0, 1};
    double la = 0, lb = 0;
    Stage(*a, x, y);
    Stage(*b, x, y);
    ASSERT_EQ(a->train_step(8, &la), Status::Ok);
    ASSERT_EQ(b->train_step(8, &lb), Status::Ok);
    EXPECT_EQ(la, lb);
  }
  auto ta = a->tensors(), tb = b->tensors();
  for (size_t k = 0; k < ta.size(); ++k) EXPECT_TRUE(BitEqual(ta[k].name, ta[k].data, tb[k].data, ta[k].size));
}

// Inference, save/load and folding on a graph: predict_one equals
// predict_batch's row bit for bit; a loaded copy equals the original; the folded
// copy (every batch norm after a conv it alone reads folded in, the skip's too)
// predicts the same to float32 rounding.
TEST(GraphNetwork, PredictSaveLoadAndFoldingWork) {
  OptimizerSpec adam;
  adam.learning_rate = 0.01;
  auto net = Make(Residual("relu", adam));
  ASSERT_NE(net, nullptr);
  Rng rng(903);
  for (int s = 0; s < 5; ++s) {
    const std::vector<float> x = rng.normal_vec(6 * net->input_size(), 0, 1);
    Stage(*net, x, {0, 1, 2, 0, 1, 2});
    double loss = 0;
    ASSERT_EQ(net->train_step(6, &loss), Status::Ok) << net->last_error().message;
  }
  const size_t n = 5, k = net->output_size();
  const std::vector<float> x = rng.normal_vec(n * net->input_size(), 0, 1);
  std::copy(x.begin(), x.end(), net->input(n));
  ASSERT_EQ(net->predict_batch(n), Status::Ok);
  const std::vector<float> batch(net->output(n), net->output(n) + n * k);
  for (size_t r = 0; r < n; ++r) {
    std::copy_n(x.begin() + r * net->input_size(), net->input_size(), net->input(1));
    ASSERT_EQ(net->predict_one(), Status::Ok);
    EXPECT_TRUE(BitEqual("row " + std::to_string(r), batch.data() + r * k, net->output(1), k));
  }
  std::unique_ptr<Network> loaded;
  ErrorInfo error;
  const std::vector<uint8_t> bytes = net->save();
  ASSERT_EQ(Network::load(bytes.data(), bytes.size(), &loaded, &error), Status::Ok) << error.message;
  EXPECT_TRUE(BytesEqual("saved again", bytes, loaded->save()));
  std::copy(x.begin(), x.end(), loaded->input(n));
  ASSERT_EQ(loaded->predict_batch(n), Status::Ok);
  EXPECT_TRUE(BitEqual("loaded", batch.data(), loaded->output(n), n * k));

  std::unique_ptr<Network> folded = net->folded();
  ASSERT_NE(folded, nullptr);
  size_t bn_before = 0, bn_after = 0;
  for (const LayerSpec& l : net->spec().layers) bn_before += std::string(l.def->name) == "batchNorm";
  for (const LayerSpec& l : folded->spec().layers) bn_after += std::string(l.def->name) == "batchNorm";
  EXPECT_EQ(bn_before, 6u);
  EXPECT_EQ(bn_after, 0u);
  std::copy(x.begin(), x.end(), folded->input(n));
  ASSERT_EQ(folded->predict_batch(n), Status::Ok);
  // Probabilities in [0, 1]; folding reorders float32 rounding only.
  EXPECT_TRUE(AllNear("folded", to_double(batch.data(), n * k), folded->output(n), 2e-6));
}

// What a graph can get wrong: each is an InvalidConfig naming the layer and
// the field, with the offending value.
TEST(GraphNetwork, BadGraphsAreRefusedNamingTheLayerAndField) {
  struct Case {
    std::vector<LayerSpec> layers;
    const char* where;
    const char* message;
  };
  const Case cases[] = {
      {{Layer("relu", "a"), Layer("relu", "", {"nope"}), Dense(2)}, "layers[1]",
       "inputs[0] names no layer of this network"},
      {{Layer("relu", "a", {"b"}), Layer("relu", "b"), Dense(2)}, "layers[0] (a)",
       "inputs[0] names a later layer; a layer's inputs come before it (a network has no cycles)"},
      {{Layer("relu", "a", {"a"}), Dense(2)}, "layers[0] (a)", "inputs[0] names this layer itself"},
      {{Layer("relu", "a"), Layer("add", "", {"a"}), Dense(2)}, "layers[1]",
       "inputs must name 2 or more layers for a add layer"},
      {{Layer("relu"), Layer("add"), Dense(2)}, "layers[1]",
       "inputs must name the 2 or more earlier layers a add layer takes"},
      {{Dense(4), Layer("relu", "a"), Dense(3), Layer("add", "", {"a", "layer2"}), Dense(2)},
       "layers[3]", "inputs[1] names no layer"},
      {{Dense(4), Layer("relu", "a"), Dense(3, "b"), Layer("add", "", {"a", "b"}), Dense(2)},
       "layers[3]", "inputs[1] has shape [3], inputs[0] has [4]; add needs inputs of one shape"},
      {{Layer("relu", "a"), Layer("relu", "a"), Dense(2)}, "layers[1] (a)",
       "name is already the name of layers[0]"},
      {{Layer("relu", "input"), Dense(2)}, "layers[0]", "name must not be 'input'"},
      {{Dense(4), Layer("relu", "dead"), Dense(2, "", {"input"})}, "layers[1] (dead)",
       "feeds no later layer"},
  };
  for (const Case& c : cases) {
    NetworkSpec s;
    s.input_size = 4;
    s.layers = c.layers;
    std::unique_ptr<Network> net;
    ErrorInfo error;
    EXPECT_EQ(Network::create(s, &net, &error), Status::InvalidConfig) << c.message;
    EXPECT_EQ(error.argument, Argument::Spec) << c.message;
    EXPECT_EQ(error.where, c.where) << error.message;
    EXPECT_NE(error.message.find(c.message), std::string::npos) << "message: " << error.message;
  }
  // concat joins channels of images of one size.
  NetworkSpec s;
  s.input_channels = 1;
  s.input_height = s.input_width = 4;
  s.input_size = 16;
  s.layers = {Conv(2, 3, 1, 1, "a"), Conv(2, 3, 2, 1, "b", {"input"}), Layer("concat", "", {"a", "b"}),
              Layer("globalAvgPool"), Dense(2)};
  std::unique_ptr<Network> net;
  ErrorInfo error;
  EXPECT_EQ(Network::create(s, &net, &error), Status::InvalidConfig);
  EXPECT_EQ(error.where, "layers[2]");
  EXPECT_EQ(error.message,
            "inputs[1] has shape [2, 2, 2], inputs[0] has [2, 4, 4]; concat needs images of one "
            "height and width, or flat features");
}

}  // namespace
