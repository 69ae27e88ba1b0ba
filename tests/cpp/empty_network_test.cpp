// A network without layers (`layers: []`): its output is its input. Predict
// gives the softmax of the input under softmaxCrossEntropy and the input itself
// under meanSquaredError; a training step computes the loss and changes
// nothing but the step count; save/load, folding and evaluate work as for any
// network. Expected values are the closed forms, in float64.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/network.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

NetworkSpec Empty(int32_t inputs, LossType loss) {
  NetworkSpec s;
  s.input_size = inputs;
  s.loss = loss;
  s.seed = 5;
  return s;
}

std::unique_ptr<Network> Make(const NetworkSpec& spec) {
  std::unique_ptr<Network> net;
  ErrorInfo error;
  EXPECT_EQ(Network::create(spec, &net, &error), Status::Ok) << error.where << ": " << error.message;
  return net;
}

// Row-wise softmax of (n, k) values, in float64.
std::vector<double> Softmax(const std::vector<float>& x, size_t n, size_t k) {
  std::vector<double> p(n * k);
  for (size_t b = 0; b < n; ++b) {
    double zmax = x[b * k], sum = 0;
    for (size_t j = 1; j < k; ++j) zmax = std::max(zmax, double(x[b * k + j]));
    for (size_t j = 0; j < k; ++j) sum += p[b * k + j] = std::exp(x[b * k + j] - zmax);
    for (size_t j = 0; j < k; ++j) p[b * k + j] /= sum;
  }
  return p;
}

// Cross-entropy of each row's softmax at its label, summed over the rows, in float64.
double CrossEntropySum(const std::vector<float>& x, const std::vector<int32_t>& y, size_t k) {
  const std::vector<double> p = Softmax(x, y.size(), k);
  double total = 0;
  for (size_t b = 0; b < y.size(); ++b) total -= std::log(p[b * k + static_cast<size_t>(y[b])]);
  return total;
}

// Inputs in [-3, 3], so every softmax argument z - max(z) is in [-6, 0].
constexpr size_t kFeatures = 5, kRows = 7;

// The softmax in float32 (layers.cpp softmax_forward) against float64, relative to each
// probability: the argument z - max(z) rounds by |z - max| u <= 6u, which exp turns into a
// relative 6u; exp itself 1u, the sum of 5 terms 4u, 1 / sum 1u, the product 1u: 13u. 16u.
constexpr double kSoftmaxRel = 16 * kU;

std::vector<double> RelTol(const std::vector<double>& expected, double rel) {
  std::vector<double> tol(expected.size());
  for (size_t i = 0; i < tol.size(); ++i) tol[i] = rel * std::fabs(expected[i]);
  return tol;
}

}  // namespace

TEST(EmptyNetwork, IsCreatedWithItsInputAsItsOutput) {
  auto net = Make(Empty(kFeatures, LossType::SoftmaxCrossEntropy));
  ASSERT_NE(net, nullptr);
  EXPECT_EQ(net->layer_count(), 0u);
  EXPECT_EQ(net->output_size(), kFeatures);
  EXPECT_TRUE(net->tensors().empty());
  EXPECT_EQ(net->min_training_batch(), 1u);
  EXPECT_EQ(layers_value(net->spec()).items().size(), 0u);
  const Value config = network_value(net->spec());
  const Value* layers = config.get("layers");
  ASSERT_NE(layers, nullptr);
  EXPECT_TRUE(layers->is_array());
  EXPECT_TRUE(layers->items().empty());

  // An image's C * H * W values, in NCHW order.
  NetworkSpec image = Empty(0, LossType::MeanSquaredError);
  image.input_channels = 2;
  image.input_height = 3;
  image.input_width = 4;
  image.input_size = 24;
  auto img = Make(image);
  ASSERT_NE(img, nullptr);
  EXPECT_EQ(img->output_size(), 24u);
  Rng rng(3);
  const std::vector<float> x = rng.uniform_vec(2 * 24, -3, 3);
  std::copy(x.begin(), x.end(), img->input(2));
  ASSERT_EQ(img->predict_batch(2), Status::Ok);
  EXPECT_TRUE(BitEqual("image rows", x.data(), img->output(2), x.size()));
}

TEST(EmptyNetwork, PredictIsTheSoftmaxOfTheInputOrTheInputItself) {
  Rng rng(11);
  const std::vector<float> x = rng.uniform_vec(kRows * kFeatures, -3, 3);
  const std::vector<double> p = Softmax(x, kRows, kFeatures);

  auto ce = Make(Empty(kFeatures, LossType::SoftmaxCrossEntropy));
  ASSERT_NE(ce, nullptr);
  std::copy(x.begin(), x.end(), ce->input(kRows));
  ASSERT_EQ(ce->predict_batch(kRows), Status::Ok);
  EXPECT_TRUE(AllNear("predict_batch", p, ce->output(kRows), RelTol(p, kSoftmaxRel)));
  // One row at a time: the same values, bit for bit.
  const std::vector<float> batch(ce->output(kRows), ce->output(kRows) + kRows * kFeatures);
  for (size_t b = 0; b < kRows; ++b) {
    std::copy_n(x.begin() + b * kFeatures, kFeatures, ce->input(1));
    ASSERT_EQ(ce->predict_one(), Status::Ok);
    EXPECT_TRUE(BitEqual("row " + std::to_string(b), batch.data() + b * kFeatures, ce->output(1), kFeatures));
  }

  auto mse = Make(Empty(kFeatures, LossType::MeanSquaredError));
  ASSERT_NE(mse, nullptr);
  std::copy(x.begin(), x.end(), mse->input(kRows));
  ASSERT_EQ(mse->predict_batch(kRows), Status::Ok);
  EXPECT_TRUE(BitEqual("mse predict_batch", x.data(), mse->output(kRows), x.size()));
  std::copy_n(x.begin() + kFeatures, kFeatures, mse->input(1));
  ASSERT_EQ(mse->predict_one(), Status::Ok);
  EXPECT_TRUE(BitEqual("mse predict_one", x.data() + kFeatures, mse->output(1), kFeatures));

  // A non-finite input is refused as for any network, naming the element.
  ce->input(1)[3] = NAN;
  EXPECT_EQ(ce->predict_one(), Status::NonFiniteInput);
  EXPECT_EQ(ce->last_error().argument, Argument::Input);
  EXPECT_EQ(ce->last_error().index, 3);
}

TEST(EmptyNetwork, EvaluateIsTheLossOfTheInputAsLogits) {
  Rng rng(12);
  const std::vector<float> x = rng.uniform_vec(kRows * kFeatures, -3, 3);
  std::vector<int32_t> y(kRows);
  for (size_t b = 0; b < kRows; ++b) y[b] = static_cast<int32_t>(b % kFeatures);
  auto ce = Make(Empty(kFeatures, LossType::SoftmaxCrossEntropy));
  ASSERT_NE(ce, nullptr);
  std::copy(x.begin(), x.end(), ce->input(kRows));
  std::copy(y.begin(), y.end(), ce->labels(kRows));
  double loss = 0;
  size_t correct = 0;
  ASSERT_EQ(ce->evaluate(kRows, &loss, &correct), Status::Ok);
  // float64 sums of exp of float32 differences z - max(z): each rounds by at most 6u, so
  // each row's log-sum-exp is off by at most 6u (absolute); 8u per row.
  EXPECT_TRUE(Near("cross-entropy sum", CrossEntropySum(x, y, kFeatures), loss, 8 * kU * kRows));
  size_t hits = 0;
  for (size_t b = 0; b < kRows; ++b) {
    const float* row = x.data() + b * kFeatures;
    hits += static_cast<size_t>(std::max_element(row, row + kFeatures) - row) == static_cast<size_t>(y[b]);
  }
  EXPECT_EQ(correct, hits);
  // A label outside [0, inputs) is refused.
  ce->labels(kRows)[2] = static_cast<int32_t>(kFeatures);
  EXPECT_EQ(ce->evaluate(kRows, &loss, &correct), Status::LabelOutOfRange);

  auto mse = Make(Empty(kFeatures, LossType::MeanSquaredError));
  ASSERT_NE(mse, nullptr);
  const std::vector<float> t = rng.uniform_vec(kRows * kFeatures, -3, 3);
  std::copy(x.begin(), x.end(), mse->input(kRows));
  std::copy(t.begin(), t.end(), mse->targets(kRows));
  double expected = 0;
  for (size_t i = 0; i < x.size(); ++i) expected += (double(x[i]) - t[i]) * (double(x[i]) - t[i]);
  ASSERT_EQ(mse->evaluate(kRows, &loss, &correct), Status::Ok);
  // The same float64 sum in the same order, then / n * n: a few float64 roundings.
  EXPECT_TRUE(Near("squared-error sum", expected / kFeatures, loss, 1e-12 * expected));
}

TEST(EmptyNetwork, ATrainingStepComputesTheLossAndChangesOnlyTheStepCount) {
  Rng rng(13);
  const std::vector<float> x = rng.uniform_vec(kRows * kFeatures, -3, 3);
  std::vector<int32_t> y(kRows);
  for (size_t b = 0; b < kRows; ++b) y[b] = static_cast<int32_t>((3 * b) % kFeatures);
  for (OptimizerType type : {OptimizerType::Adam, OptimizerType::Sgd}) {
    NetworkSpec spec = Empty(kFeatures, LossType::SoftmaxCrossEntropy);
    spec.optimizer.type = type;
    auto net = Make(spec);
    ASSERT_NE(net, nullptr);
    const uint64_t rng_state = net->rng_state();
    std::copy(x.begin(), x.end(), net->input(kRows));
    std::copy(y.begin(), y.end(), net->labels(kRows));
    double loss = 0;
    ASSERT_EQ(net->train_step(kRows, &loss), Status::Ok) << net->last_error().message;
    // The float32 loss (layers.cpp) against float64: per row, the sum of exp is off by
    // (6 + 1 + 4)u relative (arguments, exp, the sum), which is 11u on its log; the log
    // rounds by 1u of log(sum) <= log 5. 16u on the mean over the rows.
    EXPECT_TRUE(Near("train loss", CrossEntropySum(x, y, kFeatures) / kRows, loss, 16 * kU));
    EXPECT_EQ(net->steps(), 1u);
    EXPECT_EQ(net->rng_state(), rng_state);
    // One example is a training batch (no batch norm); none is not.
    ASSERT_EQ(net->train_step(1, &loss), Status::Ok);
    EXPECT_EQ(net->steps(), 2u);
    EXPECT_EQ(net->train_step(0, &loss), Status::BatchTooSmall);
    EXPECT_EQ(net->steps(), 2u);
    // Predictions are the softmax of the input still.
    ASSERT_EQ(net->predict_batch(kRows), Status::Ok);
    const std::vector<double> p = Softmax(x, kRows, kFeatures);
    EXPECT_TRUE(AllNear("predict after training", p, net->output(kRows), RelTol(p, kSoftmaxRel)));
  }

  // meanSquaredError: the loss of the input as the prediction; a loss that overflows is
  // refused and counts no step.
  auto mse = Make(Empty(kFeatures, LossType::MeanSquaredError));
  ASSERT_NE(mse, nullptr);
  const std::vector<float> t = rng.uniform_vec(kRows * kFeatures, -3, 3);
  std::copy(x.begin(), x.end(), mse->input(kRows));
  std::copy(t.begin(), t.end(), mse->targets(kRows));
  double expected = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<float>(x[i] - t[i]);  // the float32 difference layers.cpp takes
    expected += d * d;
  }
  double loss = 0;
  ASSERT_EQ(mse->train_step(kRows, &loss), Status::Ok);
  EXPECT_TRUE(Near("mse train loss", expected / x.size(), loss, 1e-12 * expected));
  EXPECT_EQ(mse->steps(), 1u);
  mse->input(1)[0] = 3e38f;
  mse->targets(1)[0] = -3e38f;
  EXPECT_EQ(mse->train_step(1, &loss), Status::Diverged);
  EXPECT_EQ(mse->steps(), 1u);
}

TEST(EmptyNetwork, SavesLoadsAndFolds) {
  NetworkSpec spec = Empty(0, LossType::SoftmaxCrossEntropy);
  spec.input_channels = 3;
  spec.input_height = 2;
  spec.input_width = 2;
  spec.input_size = 12;
  auto net = Make(spec);
  ASSERT_NE(net, nullptr);
  Rng rng(14);
  const std::vector<float> x = rng.uniform_vec(4 * 12, -3, 3);
  std::vector<int32_t> y = {0, 5, 11, 7};
  std::copy(x.begin(), x.end(), net->input(4));
  std::copy(y.begin(), y.end(), net->labels(4));
  double loss = 0;
  ASSERT_EQ(net->train_step(4, &loss), Status::Ok);
  ASSERT_EQ(net->predict_batch(4), Status::Ok);
  const std::vector<float> before(net->output(4), net->output(4) + x.size());

  const std::vector<uint8_t> bytes = net->save();
  std::unique_ptr<Network> loaded;
  ErrorInfo error;
  ASSERT_EQ(Network::load(bytes.data(), bytes.size(), &loaded, &error), Status::Ok) << error.message;
  EXPECT_EQ(loaded->layer_count(), 0u);
  EXPECT_EQ(loaded->output_size(), 12u);
  EXPECT_EQ(loaded->steps(), 1u);
  EXPECT_EQ(loaded->spec().input_channels, 3);
  EXPECT_TRUE(BytesEqual("saved again", bytes, loaded->save()));
  std::copy(x.begin(), x.end(), loaded->input(4));
  ASSERT_EQ(loaded->predict_batch(4), Status::Ok);
  EXPECT_TRUE(BitEqual("loaded predict", before.data(), loaded->output(4), before.size()));

  // A damaged byte is still caught by the checksum.
  std::vector<uint8_t> damaged = bytes;
  damaged[damaged.size() / 2] ^= 1;
  EXPECT_EQ(Network::load(damaged.data(), damaged.size(), &loaded, &error), Status::CorruptModel);

  // Folding has nothing to fold: the same function.
  std::unique_ptr<Network> folded = net->folded();
  ASSERT_NE(folded, nullptr);
  EXPECT_EQ(folded->layer_count(), 0u);
  std::copy(x.begin(), x.end(), folded->input(4));
  ASSERT_EQ(folded->predict_batch(4), Status::Ok);
  EXPECT_TRUE(BitEqual("folded predict", before.data(), folded->output(4), before.size()));
}

TEST(EmptyNetwork, WhatIsNotALayerIsRefused) {
  auto net = Make(Empty(kFeatures, LossType::MeanSquaredError));
  ASSERT_NE(net, nullptr);
  std::fill_n(net->input(2), 2 * kFeatures, 1.0f);
  EXPECT_EQ(net->forward_to(2, 0), Status::BadArgument);
  EXPECT_EQ(net->last_error().message, "the network has no layers (its output is its input), got layer 0");
  EXPECT_EQ(net->layer_output(0), nullptr);
  EXPECT_EQ(net->layer_width(0), 0u);
  EXPECT_EQ(net->population_begin(0), Status::BadArgument);
  EXPECT_EQ(net->population_check(1), Status::Ok);  // no batch norm to need two examples
  EXPECT_EQ(net->batches_tracked(0), -1);

  // softmaxCrossEntropy needs two classes: here two inputs.
  std::unique_ptr<Network> out;
  ErrorInfo error;
  EXPECT_EQ(Network::create(Empty(1, LossType::SoftmaxCrossEntropy), &out, &error), Status::InvalidConfig);
  EXPECT_EQ(error.where, "config");
  EXPECT_EQ(error.message, "loss needs at least 2 outputs, the input of a network without layers has 1");

  // `layers` must still be given, as an array.
  const Value config = network_value(Empty(3, LossType::MeanSquaredError));
  for (bool given : {false, true}) {
    Value c = Value::object();
    for (const auto& m : config.members())
      if (m.first != "layers") c.set(m.first, m.second);
    if (given) c.set("layers", Value::number(3));
    EXPECT_EQ(Network::create(c, &out, &error), Status::InvalidConfig);
    EXPECT_EQ(error.where, "config");
    EXPECT_EQ(error.message, "layers must be an array of layer configs");
    EXPECT_EQ(error.detail.kind(), given ? Value::Kind::Number : Value::Kind::Other);
  }
}
