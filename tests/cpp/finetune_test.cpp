// What fine-tuning needs from the core, and the layers of MobileNet-like
// networks: layers that are not trainable (their weights stay, gradients still
// flow through them), batch norm that trains with its running statistics
// ('frozen': they stay as they are, gamma and beta still learn), relu6, clip,
// dropout and globalMaxPool. Gradients against finite differences, as in
// graph_test.cpp; dropout against its own definition.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/layer_op.h"
#include "bnwasm/network.h"
#include "gradcheck.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

LayerSpec Layer(const char* type) { return LayerSpec::of(type); }

LayerSpec Conv(int filters, int kernel, int pad) {
  LayerSpec l = LayerSpec::of("conv2d").set("filters", filters).set("useBias", 0);
  for (size_t k = 0; k < 2; ++k) l.set("kernelSize", kernel, k);
  for (size_t k = 1; k <= 4; ++k) l.set("padding", pad, k);
  return l;
}

LayerSpec Dense(int units) { return LayerSpec::of("dense").set("units", units); }

NetworkSpec Image(std::vector<LayerSpec> layers, double lr) {
  NetworkSpec s;
  s.input_channels = 2;
  s.input_height = s.input_width = 5;
  s.input_size = 50;
  s.layers = std::move(layers);
  s.optimizer.type = OptimizerType::Sgd;
  s.optimizer.learning_rate = lr;
  s.seed = 31;
  return s;
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

double Loss(Network& net, const std::vector<float>& x, const std::vector<int32_t>& y) {
  Stage(net, x, y);
  double loss = 0;
  EXPECT_EQ(net.train_step(y.size(), &loss), Status::Ok) << net.last_error().message;
  return loss;
}

std::vector<std::vector<float>> Snapshot(Network& net) {
  std::vector<std::vector<float>> out;
  for (const TensorView& t : net.tensors()) out.emplace_back(t.data, t.data + t.size);
  return out;
}

// The gradient of every learning parameter (read off one SGD step at learning
// rate 1) against finite differences of the training loss at learning rate 0;
// see graph_test.cpp for the tolerance. Layers that are not trainable must not move.
void ExpectGradients(const std::vector<LayerSpec>& layers, const std::vector<int32_t>& y, uint64_t seed) {
  auto probe = Make(Image(layers, 0)), step = Make(Image(layers, 1));
  ASSERT_NE(probe, nullptr);
  ASSERT_NE(step, nullptr);
  Rng rng(seed);
  const std::vector<float> x = rng.normal_vec(y.size() * 50, 0, 1);
  auto a = probe->tensors(), b = step->tensors();
  for (size_t k = 0; k < a.size(); ++k) std::copy_n(a[k].data, a[k].size, b[k].data);
  step->weights_changed();
  const auto before = Snapshot(*step);
  Stage(*step, x, y);
  double loss = 0;
  ASSERT_EQ(step->train_step(y.size(), &loss), Status::Ok) << step->last_error().message;
  const std::vector<TensorView> after = step->tensors();
  for (size_t k = 0; k < a.size(); ++k) {
    const TensorView& t = a[k];
    if (!after[k].trainable) {
      // Not learned: a frozen layer's weights (and running statistics, checked by the callers).
      if (std::string(t.name) == "weight" || std::string(t.name) == "gamma" || std::string(t.name) == "beta")
        EXPECT_TRUE(BitEqual("frozen layer " + std::to_string(t.layer) + " " + t.name, before[k].data(), after[k].data, t.size));
      continue;
    }
    std::vector<float> analytic(t.size);
    std::vector<double> tol(t.size);
    for (size_t i = 0; i < t.size; ++i) analytic[i] = before[k][i] - after[k].data[i];
    const std::vector<double> numeric = numeric_gradient(
        [&] {
          probe->weights_changed();
          return Loss(*probe, x, y);
        },
        t.data, t.size);
    probe->weights_changed();
    for (size_t i = 0; i < t.size; ++i) tol[i] = 8e-5 + kU * 2 * std::fabs(t.data[i]) + kRtol * std::fabs(numeric[i]);
    EXPECT_TRUE(AllNear("layer " + std::to_string(t.layer) + " " + t.name, numeric, analytic.data(), tol));
  }
}

// Smooth activations around the layers under test: a kink within a finite
// difference's step would show as a large error that is not the code's.
TEST(FineTuning, GradientsThroughFrozenBatchNormAndGlobalMaxPool) {
  LayerSpec frozen_bn = Layer("batchNorm").set("mode", 1);
  ExpectGradients({Conv(3, 3, 1), frozen_bn, Layer("tanh"), Conv(4, 3, 0), Layer("batchNorm"), Layer("tanh"),
                   Layer("globalMaxPool"), Dense(3)},
                  {0, 2, 1, 2, 1}, 1001);
}

// clip and relu6 against their definition, in closed form: for dense W1 ->
// clip -> dense W2 under softmax cross-entropy, with c = clip(W1 x) and
// g = (softmax(W2 c) - onehot) / B, dW1 = sum_b (W2^T g_b * [lo < c_b < hi]) x_b^T.
// (No finite differences: the kinks are everywhere the clip is active.)
TEST(FineTuning, ClipAndRelu6PassGradientsWhereTheyDoNotClip) {
  for (const bool relu6 : {false, true}) {
    NetworkSpec s;
    s.input_size = 5;
    LayerSpec act = relu6 ? Layer("relu6") : Layer("clip").set("min", -0.5).set("max", 0.75);
    const double lo = relu6 ? 0 : -0.5, hi = relu6 ? 6 : 0.75;
    s.layers = {Dense(7), act, Dense(3)};
    s.optimizer.type = OptimizerType::Sgd;
    s.optimizer.learning_rate = 1;
    auto net = Make(s);
    ASSERT_NE(net, nullptr);
    Rng rng(1005);
    const size_t B = 6;
    // relu6 gets inputs up to ~10 so that both of its ends are reached.
    const std::vector<float> x = rng.normal_vec(B * 5, 0, relu6 ? 8 : 1);
    const std::vector<int32_t> y = {0, 1, 2, 1, 0, 2};
    const auto w = Snapshot(*net);  // W1 (7, 5), b1 (7), W2 (3, 7), b2 (3)
    Loss(*net, x, y);
    const auto w_after = Snapshot(*net);
    const float* c = net->layer_output(1);
    const float* z = net->layer_output(2);
    std::vector<double> expected(35, 0.0);
    size_t clipped = 0, passed = 0;
    for (size_t b = 0; b < B; ++b) {
      double m = z[b * 3], sum = 0, g[3];
      for (int k = 1; k < 3; ++k) m = std::max(m, double(z[b * 3 + k]));
      for (int k = 0; k < 3; ++k) sum += std::exp(z[b * 3 + k] - m);
      for (int k = 0; k < 3; ++k) g[k] = (std::exp(z[b * 3 + k] - m) / sum - (y[b] == k)) / B;
      for (size_t u = 0; u < 7; ++u) {
        const double cu = c[b * 7 + u];
        const bool inside = cu > lo && cu < hi;
        (inside ? passed : clipped)++;
        if (!inside) continue;
        double back = 0;
        for (int k = 0; k < 3; ++k) back += w[2][k * 7 + u] * g[k];
        for (size_t i = 0; i < 5; ++i) expected[u * 5 + i] += back * x[b * 5 + i];
      }
    }
    EXPECT_GT(clipped, 5u) << (relu6 ? "relu6" : "clip");
    EXPECT_GT(passed, 5u) << (relu6 ? "relu6" : "clip");
    std::vector<float> analytic(35);
    for (size_t i = 0; i < 35; ++i) analytic[i] = w[0][i] - w_after[0][i];
    // float32 sums of a few terms, read off p - (p - g): a few u of the largest term.
    EXPECT_TRUE(AllNear(relu6 ? "relu6" : "clip", expected, analytic.data(), relu6 ? 2e-5 : 2e-6));
  }
}

// A layer with trainable false keeps its weights; the layer before it still
// learns, through it.
TEST(FineTuning, AFrozenLayerStaysAndPassesGradientsThrough) {
  LayerSpec frozen_conv = Conv(4, 3, 1).set("trainable", 0);
  LayerSpec frozen_bn = Layer("batchNorm").set("trainable", 0);
  ExpectGradients({Conv(3, 3, 1), Layer("batchNorm"), Layer("tanh"), frozen_conv, frozen_bn, Layer("tanh"),
                   Layer("globalAvgPool"), Dense(3)},
                  {1, 0, 2, 2}, 1002);
}

// Frozen batch norm (mode 'frozen', or every layer at once through
// set_batch_norm) trains with its running statistics and leaves them; a
// mini-batch of one example is then allowed.
TEST(FineTuning, FrozenBatchNormKeepsItsRunningStatisticsAndTakesBatchesOfOne) {
  auto net = Make(Image({Conv(3, 3, 1), Layer("batchNorm"), Layer("relu"), Layer("globalAvgPool"), Dense(3)}, 0.1));
  ASSERT_NE(net, nullptr);
  Rng rng(1003);
  const std::vector<float> x = rng.normal_vec(4 * 50, 0, 1);
  const std::vector<int32_t> y = {0, 1, 2, 0};
  for (int s = 0; s < 3; ++s) Loss(*net, x, y);  // running statistics away from their start
  EXPECT_EQ(net->min_training_batch(), 2u);
  net->set_batch_norm(kFrozen);
  EXPECT_EQ(net->min_training_batch(), 1u);
  const auto before = Snapshot(*net);
  // Training now normalizes as inference does: its loss is evaluate's on the same weights
  // (inference runs the conv through other kernels, so to float32 rounding).
  Stage(*net, x, y);
  double eval = 0;
  size_t correct = 0;
  ASSERT_EQ(net->evaluate(4, &eval, &correct), Status::Ok);
  EXPECT_TRUE(Near("frozen training loss", eval / 4, Loss(*net, x, y), 1e-6));
  double one = 0;
  Stage(*net, std::vector<float>(x.begin(), x.begin() + 50), {2});
  ASSERT_EQ(net->train_step(1, &one), Status::Ok) << net->last_error().message;
  const std::vector<TensorView> after = net->tensors();
  bool learned = false;
  for (size_t k = 0; k < after.size(); ++k) {
    if (!after[k].trainable)  // the running statistics, bit for bit
      EXPECT_TRUE(BitEqual(std::string("layer ") + std::to_string(after[k].layer) + " " + after[k].name, before[k].data(), after[k].data, after[k].size));
    else
      learned = learned || std::memcmp(before[k].data(), after[k].data, after[k].size * 4) != 0;
  }
  EXPECT_TRUE(learned);  // gamma, beta and the weights still learn
  net->set_batch_norm(kConfigured);
  EXPECT_EQ(net->min_training_batch(), 2u);
  Stage(*net, std::vector<float>(x.begin(), x.begin() + 50), {2});
  EXPECT_EQ(net->train_step(1, &one), Status::BatchTooSmall);
}

// Dropout in training: each value 0 or x / (1 - rate), about `rate` of them 0;
// at inference the identity; backward drops the same values (finite
// differences, each loss on a copy loaded at the same step, so the same draw).
TEST(FineTuning, DropoutDropsAboutRateOfTheValuesScalesTheRestAndBackwardAgrees) {
  NetworkSpec s;
  s.input_size = 2000;
  s.layers = {LayerSpec::of("dropout").set("rate", 0.3), Dense(2)};
  s.optimizer.type = OptimizerType::Sgd;
  s.optimizer.learning_rate = 0;
  auto net = Make(s);
  ASSERT_NE(net, nullptr);
  Rng rng(1004);
  const std::vector<float> x = rng.normal_vec(4 * 2000, 0, 1);
  Loss(*net, x, {0, 1, 1, 0});
  const float* out = net->layer_output(0);
  const float scale = static_cast<float>(1.0 / 0.7);
  size_t dropped = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (out[i] == 0.0f) ++dropped;
    else ASSERT_EQ(out[i], x[i] * scale) << i;
  }
  // 8,000 draws: 0.3 +- 4 standard deviations (sqrt(0.21 / 8000) = 0.0051).
  EXPECT_NEAR(dropped / 8000.0, 0.3, 4 * 0.0051);
  std::copy_n(x.begin(), 2000, net->input(1));
  ASSERT_EQ(net->forward_to(1, 0), Status::Ok);
  EXPECT_TRUE(BitEqual("inference", x.data(), net->layer_output(0), 2000));

  NetworkSpec g;
  g.input_size = 6;
  g.layers = {Dense(8), LayerSpec::of("dropout").set("rate", 0.5), Layer("tanh"), Dense(3)};
  g.optimizer.type = OptimizerType::Sgd;
  g.optimizer.learning_rate = 1;
  auto step = Make(g);
  g.optimizer.learning_rate = 0;
  auto probe = Make(g);
  ASSERT_NE(step, nullptr);
  ASSERT_NE(probe, nullptr);
  const std::vector<float> xs = rng.normal_vec(5 * 6, 0, 1);
  const std::vector<int32_t> ys = {0, 1, 2, 1, 0};
  const auto w0 = Snapshot(*step);
  Loss(*step, xs, ys);
  const auto w1 = Snapshot(*step);
  TensorView weight = probe->tensors()[0];
  std::copy(w0[0].begin(), w0[0].end(), weight.data);
  for (size_t k = 1; k < w0.size(); ++k) std::copy(w0[k].begin(), w0[k].end(), probe->tensors()[k].data);
  probe->weights_changed();
  const std::vector<uint8_t> base = probe->save();  // step 0, as the step above took
  auto loss_at = [&] {
    std::unique_ptr<Network> copy;
    ErrorInfo error;
    std::vector<uint8_t> bytes = probe->save();
    EXPECT_EQ(Network::load(bytes.data(), bytes.size(), &copy, &error), Status::Ok);
    return Loss(*copy, xs, ys);
  };
  const std::vector<double> numeric = numeric_gradient(loss_at, weight.data, weight.size);
  std::vector<float> analytic(weight.size);
  std::vector<double> tol(weight.size);
  for (size_t i = 0; i < weight.size; ++i) {
    analytic[i] = w0[0][i] - w1[0][i];
    tol[i] = 8e-5 + kU * 2 * std::fabs(w0[0][i]) + kRtol * std::fabs(numeric[i]);
  }
  EXPECT_TRUE(AllNear("dense weight through dropout", numeric, analytic.data(), tol));
  EXPECT_FALSE(base.empty());
}

}  // namespace
