// What fine-tuning needs from the core, and the layers of MobileNet-like
// networks: layers that are not trainable (their weights stay, gradients still
// flow through them), batch norm that trains with its running statistics
// ('frozen': they stay as they are, gamma and beta still learn), relu6, clip,
// dropout and globalMaxPool. Gradients against finite differences, as in
// graph_test.cpp; dropout against its own definition.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/depthwise.h"
#include "bnwasm/layer_op.h"
#include "bnwasm/layers.h"
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

// Grouped and depthwise convolutions (MobileNet's), dilated, padded 'sameLower'
// at stride 2: forward against a double loop over PyTorch's definition
// (group k of the output reads input channels [k C', (k + 1) C')), backward
// against finite differences.
LayerSpec GroupConv(int filters, int kernel, int groups, int stride, int dilation, PadMode mode) {
  LayerSpec l = Conv(filters, kernel, 0).set("groups", groups).set("padding", static_cast<double>(mode));
  for (size_t k = 0; k < 2; ++k) l.set("stride", stride, k).set("dilation", dilation, k);
  return l;
}

TEST(FineTuning, GroupedDilatedConvolutionsMatchTheirDefinition) {
  NetworkSpec s;
  s.input_channels = 4;
  s.input_height = 7;
  s.input_width = 6;
  s.input_size = 168;
  // 4 channels in 2 groups to 6 filters, 3x3 dilated 2, 'sameLower' at stride 2: ceil(7/2) x ceil(6/2).
  LayerSpec conv = GroupConv(6, 3, 2, 2, 2, PadMode::SameLower).set("useBias", 1);
  s.layers = {conv};
  s.loss = LossType::MeanSquaredError;
  auto net = Make(s);
  ASSERT_NE(net, nullptr);
  EXPECT_EQ(net->output_size(), size_t(6 * 4 * 3));
  Rng rng(1006);
  const std::vector<float> x = rng.normal_vec(2 * 168, 0, 1);
  auto ts = net->tensors();  // weight (6, 2, 3, 3), bias (6)
  ASSERT_EQ(ts[0].size, size_t(6 * 2 * 9));
  std::copy(x.begin(), x.end(), net->input(2));
  ASSERT_EQ(net->predict_batch(2), Status::Ok);
  const float* y = net->output(2);
  // 'sameLower': the output 4 x 3 needs (4-1)*2 + 5 - 7 = 4 rows and (3-1)*2 + 5 - 6 = 3
  // columns of zeros; the odd one goes above and to the left.
  const long top = 2, left = 2;
  std::vector<double> expected(2 * 72), tol(2 * 72);
  for (size_t b = 0; b < 2; ++b)
    for (size_t f = 0; f < 6; ++f)
      for (size_t oy = 0; oy < 4; ++oy)
        for (size_t ox = 0; ox < 3; ++ox) {
          double v = ts[1].data[f], mag = std::fabs(v);
          const size_t group = f / 3;
          for (size_t c = 0; c < 2; ++c)
            for (size_t ky = 0; ky < 3; ++ky)
              for (size_t kx = 0; kx < 3; ++kx) {
                const long iy = long(oy * 2 + ky * 2) - top, ix = long(ox * 2 + kx * 2) - left;
                if (iy < 0 || ix < 0 || iy >= 7 || ix >= 6) continue;
                const double t = double(x[((b * 4 + group * 2 + c) * 7 + iy) * 6 + ix]) * ts[0].data[((f * 2 + c) * 3 + ky) * 3 + kx];
                v += t;
                mag += std::fabs(t);
              }
          const size_t i = ((b * 6 + f) * 4 + oy) * 3 + ox;
          expected[i] = v;
          tol[i] = 20 * kU * mag;  // 19 float32 additions at most
        }
  EXPECT_TRUE(AllNear("grouped dilated conv", expected, y, tol));

  // Depthwise (groups = channels, two filters each) and grouped, through backward.
  ExpectGradients({Conv(4, 3, 1), Layer("batchNorm"), Layer("tanh"),
                   GroupConv(8, 3, 4, 1, 1, PadMode::Same), Layer("batchNorm"), Layer("tanh"),
                   GroupConv(4, 3, 2, 2, 2, PadMode::SameLower), Layer("tanh"), Layer("globalAvgPool"), Dense(3)},
                  {2, 0, 1, 1}, 1007);
}

// Depthwise convolutions go through their own kernels (bnwasm/depthwise.h):
// rows of at least four outputs along the row, smaller ones across channels.
// Backward against finite differences through both, with a bias, stride 2 and
// a channel multiplier of 2; the first depthwise layer's input gradient flows
// into a conv that learns.
TEST(FineTuning, DepthwiseConvolutionGradients) {
  ExpectGradients({Conv(4, 3, 1), Layer("batchNorm"), Layer("tanh"),
                   GroupConv(4, 3, 4, 1, 1, PadMode::Same).set("useBias", 1), Layer("batchNorm"), Layer("tanh"),
                   GroupConv(8, 3, 4, 2, 1, PadMode::Same).set("useBias", 1), Layer("tanh"),
                   GroupConv(8, 3, 8, 1, 1, PadMode::Same), Layer("tanh"), Layer("globalAvgPool"), Dense(3)},
                  {1, 0, 2, 1}, 1010);
}

// Inference runs a depthwise conv, the batch norm after it and a ReLU or a
// clip (relu6, clip) in one pass, and the activation without a batch norm: the
// same bits as the layers in turn (the conv through the reference kernel, the
// clip as min(max(v, lo), hi), the clip layer's expression). 3 channels of
// 7 x 9, two filters each, stride 1 (rows of 9) and 2 (rows of 5, 4 x 5).
TEST(FineTuning, DepthwiseInferenceEqualsTheLayersInTurn) {
  LayerSpec clip = Layer("clip").set("min", -0.5).set("max", 0.7);
  const struct {
    const char* name;
    LayerSpec layer;
    float lo, hi;
  } activations[] = {{"none", LayerSpec(), 0, 0},
                     {"relu", Layer("relu"), 0, 0},
                     {"relu6", Layer("relu6"), 0.0f, 6.0f},
                     {"clip", clip, -0.5f, 0.7f}};
  for (const int stride : {1, 2})
    for (const bool bn : {false, true})
      for (const auto& act : activations) {
        const std::string what = "stride " + std::to_string(stride) + (bn ? ", batch norm, " : ", ") + act.name;
        NetworkSpec s;
        s.input_channels = 3;
        s.input_height = 7;
        s.input_width = 9;
        s.input_size = 189;
        s.layers = {GroupConv(6, 3, 3, stride, 1, PadMode::Same).set("useBias", 1)};
        if (bn) s.layers.push_back(Layer("batchNorm"));
        if (std::string(act.name) != "none") s.layers.push_back(act.layer);
        s.loss = LossType::MeanSquaredError;
        auto net = Make(s);
        ASSERT_NE(net, nullptr) << what;
        Rng rng(1011 + stride);
        auto ts = net->tensors();  // weight, bias, then gamma, beta, runningMean, runningVariance, ...
        ASSERT_GE(ts.size(), size_t(bn ? 6 : 2));
        if (bn) ASSERT_STREQ(ts[5].name, "runningVariance");
        for (size_t k = 0; k < (bn ? 6 : 2); ++k)
          for (size_t i = 0; i < ts[k].size; ++i)
            ts[k].data[i] = static_cast<float>(k == 5 ? rng.uniform(0.2, 2) : rng.uniform(-1, 1));
        net->weights_changed();
        const size_t B = 2, OH = (7 + stride - 1) / stride, OW = (9 + stride - 1) / stride, out = 6 * OH * OW;
        ASSERT_EQ(net->output_size(), out);
        const std::vector<float> x = rng.normal_vec(B * 189, 0, 1);
        std::copy(x.begin(), x.end(), net->input(B));
        ASSERT_EQ(net->predict_batch(B), Status::Ok);
        DepthwiseConv g{3, 7, 9, 2, 3, 3, size_t(stride), size_t(stride), 1, 1, OH, OW};
        std::vector<float> want(B * out);
        DepthwiseEpilogue ep;
        ep.init = ts[1].data;
        for (size_t b = 0; b < B; ++b)
          f32_dwconv__scalar(want.data() + b * out, nullptr, x.data() + b * 189, ts[0].data, ep, g);
        if (bn)
          batchnorm_forward_infer(want.data(), want.data(), ts[2].data, ts[3].data, ts[4].data, ts[5].data, B, 6,
                                  OH * OW, 1e-5f);
        if (std::string(act.name) == "relu") relu_forward(want.data(), want.data(), want.size());
        if (act.hi > act.lo)
          for (float& v : want) v = std::min(std::max(v, act.lo), act.hi);
        EXPECT_TRUE(BitEqual(what, want.data(), net->output(B), want.size()));
      }
}

// Pooling with padding and ceilMode against PyTorch's definition: a window of
// the padded input (padding adds nothing to a maximum); ceil_mode adds a last
// window unless it would start past the input and padding; count_include_pad
// divides by the window clipped to the padded input, else by the values under it.
LayerSpec Pool(const char* type, int kernel, int stride, int pad, bool ceil) {
  LayerSpec l = LayerSpec::of(type).set("ceilMode", ceil);
  for (size_t k = 0; k < 2; ++k) l.set("poolSize", kernel, k).set("stride", stride, k);
  for (size_t k = 1; k <= 4; ++k) l.set("padding", pad, k);
  return l;
}

TEST(FineTuning, PaddedPoolingMatchesPyTorchsDefinition) {
  struct Case {
    const char* type;
    int kernel, stride, pad;
    bool ceil, count_pad;
    size_t oh, ow;  // PyTorch's output size for a 2x7x6 input
  };
  const Case cases[] = {
      {"maxPool2d", 3, 2, 1, false, false, 4, 3},  // ResNet's stem pool
      {"maxPool2d", 2, 2, 0, true, false, 4, 3},   // ceil: a last window of one row
      {"avgPool2d", 3, 2, 1, false, true, 4, 3},
      {"avgPool2d", 3, 2, 1, true, false, 4, 4},   // ceil and padding, count_include_pad off
      {"avgPool2d", 2, 3, 1, true, true, 3, 3},
  };
  for (const Case& c : cases) {
    NetworkSpec s;
    s.input_channels = 2;
    s.input_height = 7;
    s.input_width = 6;
    s.input_size = 84;
    LayerSpec pool = Pool(c.type, c.kernel, c.stride, c.pad, c.ceil);
    if (std::string(c.type) == "avgPool2d") pool.set("countIncludePad", c.count_pad);
    s.layers = {pool};
    s.loss = LossType::MeanSquaredError;
    auto net = Make(s);
    ASSERT_NE(net, nullptr);
    ASSERT_EQ(net->output_size(), 2 * c.oh * c.ow) << c.type << " ceil " << c.ceil;
    Rng rng(1008);
    const std::vector<float> x = rng.normal_vec(84, 0, 1);
    std::copy(x.begin(), x.end(), net->input(1));
    ASSERT_EQ(net->predict_batch(1), Status::Ok);
    std::vector<double> expected(net->output_size());
    for (size_t ch = 0; ch < 2; ++ch)
      for (size_t oy = 0; oy < c.oh; ++oy)
        for (size_t ox = 0; ox < c.ow; ++ox) {
          const long y0 = long(oy) * c.stride - c.pad, x0 = long(ox) * c.stride - c.pad;
          const long y1 = std::min<long>(y0 + c.kernel, 7 + c.pad), x1 = std::min<long>(x0 + c.kernel, 6 + c.pad);
          const long padded = (y1 - y0) * (x1 - x0);
          double best = -INFINITY, sum = 0;
          long n = 0;
          for (long y = std::max(y0, 0L); y < std::min(y1, 7L); ++y)
            for (long xx = std::max(x0, 0L); xx < std::min(x1, 6L); ++xx, ++n) {
              best = std::max(best, double(x[(ch * 7 + y) * 6 + xx]));
              sum += x[(ch * 7 + y) * 6 + xx];
            }
          expected[(ch * c.oh + oy) * c.ow + ox] = std::string(c.type) == "maxPool2d" ? best : sum / (c.count_pad ? padded : n);
        }
    // A maximum is one of the inputs; a mean is at most 9 additions and a division.
    EXPECT_TRUE(AllNear(std::string(c.type) + (c.ceil ? " ceil" : ""), expected, net->output(1), 1e-6));
  }
  // Backward through both, against finite differences. Into a max pool goes a depthwise
  // 1x1 conv: each channel is its input times one weight, so a finite difference's step
  // scales a channel and never changes which value of a window is the largest (a tie
  // between close values would make the difference meaningless).
  LayerSpec avg = Pool("avgPool2d", 3, 2, 1, true);
  avg.set("countIncludePad", 0);
  ExpectGradients({GroupConv(2, 1, 2, 1, 1, PadMode::Explicit), Pool("maxPool2d", 3, 2, 1, true), Layer("tanh"),
                   Conv(3, 3, 1), Layer("tanh"), avg, Layer("globalAvgPool"), Dense(3)},
                  {1, 2, 0, 0}, 1009);
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
