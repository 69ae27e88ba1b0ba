// The Network through its public interface: running statistics, inference,
// refused steps, save/load, optimizers, initialization and learning.
#include "bnwasm/network.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iterator>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

// Every allocation through operator new in this test binary is counted, so a
// test can check that a call allocates nothing (network.h: nothing allocates
// per step once the staging buffers have grown). Replacing the global
// operator is allowed anywhere in the program; malloc keeps sanitizers seeing
// every block.
static std::atomic<size_t> g_allocations{0};

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// ---- building networks --------------------------------------------------------------

LayerSpec DenseLayer(int32_t units, Init init = Init::Auto, bool use_bias = true) {
  return LayerSpec::of("dense")
      .set("units", units)
      .set("init", static_cast<double>(init))
      .set("useBias", use_bias);
}

LayerSpec BatchNormLayer(double momentum = 0.9) {
  return LayerSpec::of("batchNorm").set("momentum", momentum);
}

LayerSpec Activation(const char* type) { return LayerSpec::of(type); }

OptimizerSpec Sgd(double lr, double momentum = 0, bool nesterov = false, double weight_decay = 0) {
  OptimizerSpec o;
  o.type = OptimizerType::Sgd;
  o.learning_rate = lr;
  o.momentum = momentum;
  o.nesterov = nesterov;
  o.weight_decay = weight_decay;
  return o;
}

OptimizerSpec Adam(double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
                   double weight_decay = 0) {
  OptimizerSpec o;
  o.type = OptimizerType::Adam;
  o.learning_rate = lr;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.epsilon = eps;
  o.weight_decay = weight_decay;
  return o;
}

NetworkSpec Spec(int32_t input_size, std::vector<LayerSpec> layers, OptimizerSpec opt,
                 LossType loss = LossType::SoftmaxCrossEntropy, uint32_t seed = 1) {
  NetworkSpec s;
  s.input_size = input_size;
  s.layers = std::move(layers);
  s.optimizer = opt;
  s.loss = loss;
  s.seed = seed;
  return s;
}

std::unique_ptr<Network> Make(const NetworkSpec& spec) {
  std::unique_ptr<Network> net;
  ErrorInfo error;
  const Status s = Network::create(spec, &net, &error);
  EXPECT_EQ(s, Status::Ok) << error.message;
  return net;
}

// A dense + batch norm + activations network with sizes off the kernel tiles.
NetworkSpec MixedSpec(OptimizerSpec opt = Adam(0.01),
                      LossType loss = LossType::SoftmaxCrossEntropy) {
  LayerSpec bn_corrected = BatchNormLayer(0.8);
  bn_corrected.set("biasCorrection", 1);
  LayerSpec bn_cumulative = BatchNormLayer();
  bn_cumulative.set("statistics", 1);
  return Spec(5,
              {DenseLayer(11), bn_corrected, Activation("relu"),
               DenseLayer(9, Init::Auto, false), bn_cumulative, Activation("tanh"),
               DenseLayer(3), Activation("sigmoid"), DenseLayer(3)},
              opt, loss, 7);
}

const TensorView* Find(const std::vector<TensorView>& ts, int32_t layer, const char* name) {
  for (const TensorView& t : ts)
    if (t.layer == layer && std::strcmp(t.name, name) == 0) return &t;
  return nullptr;
}

std::vector<float> Copy(const TensorView* t) {
  return t == nullptr ? std::vector<float>() : std::vector<float>(t->data, t->data + t->size);
}

struct Batch {
  std::vector<float> x;
  std::vector<int32_t> labels;
  std::vector<float> targets;
  size_t rows = 0;
};

// Inputs N(0, 1) (times `scale`), labels in [0, classes), targets U(-3, 3).
Batch RandomBatch(Rng& rng, size_t rows, size_t inputs, size_t outputs, double scale = 1.0) {
  Batch b;
  b.rows = rows;
  b.x = rng.normal_vec(rows * inputs, 0, scale);
  for (size_t i = 0; i < rows; ++i) b.labels.push_back(static_cast<int32_t>(rng.next() % outputs));
  b.targets = rng.uniform_vec(rows * outputs, -3, 3);
  return b;
}

void Stage(Network& net, const Batch& b) {
  std::copy(b.x.begin(), b.x.end(), net.input(b.rows));
  std::copy(b.labels.begin(), b.labels.end(), net.labels(b.rows));
  std::copy(b.targets.begin(), b.targets.end(), net.targets(b.rows));
}

Status Train(Network& net, const Batch& b, double* loss = nullptr) {
  Stage(net, b);
  double l = 0;
  const Status s = net.train_step(b.rows, &l);
  if (loss != nullptr) *loss = l;
  return s;
}

// Trains `steps` mini-batches of `rows` random examples.
void TrainRandom(Network& net, Rng& rng, size_t steps, size_t rows) {
  for (size_t i = 0; i < steps; ++i) {
    ASSERT_EQ(Train(net, RandomBatch(rng, rows, net.input_size(), net.output_size())), Status::Ok)
        << net.last_error().message;
  }
}

std::vector<float> PredictBatch(Network& net, const std::vector<float>& x, size_t rows) {
  std::copy(x.begin(), x.end(), net.input(rows));
  EXPECT_EQ(net.predict_batch(rows), Status::Ok) << net.last_error().message;
  const float* y = net.output(rows);
  return std::vector<float>(y, y + rows * net.output_size());
}

// ---- running statistics ----------------------------------------------------------------

struct StatsMode {
  const char* name;
  bool cumulative, bias_correction, unbiased;
};

void PrintTo(const StatsMode& m, std::ostream* os) { *os << m.name; }

class RunningStatistics : public ::testing::TestWithParam<StatsMode> {};

// Batch norm is the first layer, so its input is the raw x fed in and the
// batch statistics can be computed here, in double, independently.
TEST_P(RunningStatistics, MatchClosedFormAfterEachStep) {
  const StatsMode mode = GetParam();
  const size_t C = 3, B = 8, K = 6;
  const double m = 0.7;  // not 0.5, so swapping m and 1 - m shows
  LayerSpec bn = BatchNormLayer(m);
  bn.set("statistics", mode.cumulative).set("biasCorrection", mode.bias_correction);
  bn.set("runningVariance", mode.unbiased);
  auto net = Make(Spec(int32_t(C), {bn, DenseLayer(2)}, Sgd(0.05)));
  ASSERT_NE(net, nullptr);

  // Before any step: mean 0, variance 1.
  {
    const auto ts = net->tensors();
    ASSERT_NE(Find(ts, 0, "runningMean"), nullptr);
    ASSERT_NE(Find(ts, 0, "runningVariance"), nullptr);
    EXPECT_TRUE(AllNear("initial running mean", std::vector<double>(C, 0.0),
                        Find(ts, 0, "runningMean")->data, 0.0));
    EXPECT_TRUE(AllNear("initial running variance", std::vector<double>(C, 1.0),
                        Find(ts, 0, "runningVariance")->data, 0.0));
  }

  const double offset[C] = {1.5, -2.0, 0.3}, spread[C] = {0.5, 2.0, 1.0};
  std::vector<double> r_mean(C, 0.0), r_var(C, 1.0);      // EMA and the reported value
  std::vector<double> raw_mean(C, 0.0), raw_var(C, 0.0);  // bias correction: EMA from zero
  std::vector<double> sum_mean(C, 0.0), sum_var(C, 0.0);  // cumulative
  double max_x = 0, max_var = 1;
  Rng rng(200);
  for (size_t t = 1; t <= K; ++t) {
    Batch batch = RandomBatch(rng, B, C, 2);
    for (size_t b = 0; b < B; ++b)
      for (size_t c = 0; c < C; ++c) {
        float& x = batch.x[b * C + c];
        x = static_cast<float>(offset[c] + spread[c] * x);
        max_x = std::max(max_x, std::fabs(double(x)));
      }
    ASSERT_EQ(Train(*net, batch), Status::Ok) << net->last_error().message;

    std::vector<double> s_mean(C, 0.0), s_var(C, 0.0);
    for (size_t c = 0; c < C; ++c) {
      for (size_t b = 0; b < B; ++b) s_mean[c] += batch.x[b * C + c];
      s_mean[c] /= B;
      for (size_t b = 0; b < B; ++b)
        s_var[c] += (batch.x[b * C + c] - s_mean[c]) * (batch.x[b * C + c] - s_mean[c]);
      s_var[c] /= B;  // biased
      const double v = mode.unbiased ? s_var[c] * B / (B - 1) : s_var[c];
      max_var = std::max(max_var, v);
      if (mode.cumulative) {
        sum_mean[c] += s_mean[c];
        sum_var[c] += v;
        r_mean[c] = sum_mean[c] / t;
        r_var[c] = sum_var[c] / t;
      } else if (mode.bias_correction) {
        raw_mean[c] = m * raw_mean[c] + (1 - m) * s_mean[c];
        raw_var[c] = m * raw_var[c] + (1 - m) * v;
        r_mean[c] = raw_mean[c] / (1 - std::pow(m, double(t)));
        r_var[c] = raw_var[c] / (1 - std::pow(m, double(t)));
      } else {
        r_mean[c] = m * r_mean[c] + (1 - m) * s_mean[c];
        r_var[c] = m * r_var[c] + (1 - m) * v;
      }
    }
    // The layer's float32 batch statistics: mean within (B + 3) u max|x|,
    // variance within (B + 6) u of itself plus the squared mean error (see
    // kernels_test). Each step folds them in with weights <= 1 and rounds the
    // running value once (u); bias correction divides by 1 - m^t, which undoes
    // the (1 - m) weights it multiplies in, so errors add up over the steps:
    // after t steps at most t * (B + 8) u of the scale.
    const std::string at = std::string(mode.name) + " after " + std::to_string(t) + " steps";
    const double tol_mean = t * (B + 8) * kU * max_x;
    const double tol_var = t * (B + 8) * kU * max_var;
    EXPECT_TRUE(AllNear("batch mean", s_mean, net->batch_mean(0), (B + 3) * kU * max_x)) << at;
    const double mean_err = (B + 3) * kU * max_x;
    EXPECT_TRUE(AllNear("batch variance (biased)", s_var, net->batch_var(0),
                        (B + 6) * kU * max_var + mean_err * mean_err))
        << at;
    const auto ts = net->tensors();
    ASSERT_TRUE(AllNear("running mean", r_mean, Find(ts, 0, "runningMean")->data, tol_mean)) << at;
    ASSERT_TRUE(AllNear("running variance", r_var, Find(ts, 0, "runningVariance")->data, tol_var))
        << at;
  }
}

INSTANTIATE_TEST_SUITE_P(Network, RunningStatistics,
                         ::testing::Values(StatsMode{"ema_unbiased", false, false, true},
                                           StatsMode{"ema_biased", false, false, false},
                                           StatsMode{"cumulative_unbiased", true, false, true},
                                           StatsMode{"cumulative_biased", true, false, false},
                                           StatsMode{"bias_correction_unbiased", false, true, true},
                                           StatsMode{"bias_correction_biased", false, true, false}),
                         [](const ::testing::TestParamInfo<StatsMode>& p) {
                           return std::string(p.param.name);
                         });

// ---- inference --------------------------------------------------------------------------

// Inference through the network is the closed form of its running statistics:
// a lone batch-norm layer with statistics set from outside.
TEST(NetworkInference, BatchNormUsesOnlyRunningStatistics) {
  const size_t C = 4, n = 6;
  LayerSpec bn = BatchNormLayer();
  bn.set("epsilon", 1e-2);
  auto net = Make(Spec(int32_t(C), {bn}, Sgd(0.1), LossType::MeanSquaredError));
  ASSERT_NE(net, nullptr);
  const float gamma[C] = {0.5f, 2.0f, -1.0f, 1.5f}, beta[C] = {0.1f, -0.3f, 0.0f, 2.0f};
  const float rm[C] = {3.0f, -1.0f, 0.25f, 10.0f}, rv[C] = {0.5f, 4.0f, 1.0f, 9.0f};
  const auto ts = net->tensors();
  std::copy(gamma, gamma + C, Find(ts, 0, "gamma")->data);
  std::copy(beta, beta + C, Find(ts, 0, "beta")->data);
  std::copy(rm, rm + C, Find(ts, 0, "runningMean")->data);
  std::copy(rv, rv + C, Find(ts, 0, "runningVariance")->data);
  net->weights_changed();
  Rng rng(210);
  const std::vector<float> x = rng.normal_vec(n * C, 0, 3);
  const std::vector<float> y = PredictBatch(*net, x, n);
  std::vector<double> expected(n * C), tol(n * C);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < C; ++c) {
      const double scale = gamma[c] / std::sqrt(double(rv[c]) + bn.get("epsilon"));
      expected[i * C + c] = (x[i * C + c] - rm[c]) * scale + beta[c];
      // As in layers_test InferenceUsesOnlyRunningStatistics: 3 u in the
      // scale, two roundings each in shift and output.
      tol[i * C + c] = 6 * kU * (std::fabs(x[i * C + c]) + std::fabs(rm[c])) * std::fabs(scale) +
                       2 * kU * std::fabs(beta[c]);
    }
  EXPECT_TRUE(AllNear("predict_batch", expected, y.data(), tol));
}

// The design promises that predict_one equals predict_batch row by row, bit
// for bit (both run dense layers through the same gemm), and that a row's
// prediction does not depend on the other rows of the batch.
class PredictConsistency : public ::testing::TestWithParam<LossType> {};

TEST_P(PredictConsistency, PredictOneEqualsBatchRowsBitForBit) {
  auto net = Make(MixedSpec(Adam(0.01), GetParam()));
  ASSERT_NE(net, nullptr);
  Rng rng(220);
  TrainRandom(*net, rng, 5, 16);  // running statistics away from 0 and 1
  const size_t n = 13, in = net->input_size(), out = net->output_size();
  const std::vector<float> x = rng.normal_vec(n * in, 0, 1.5);
  const std::vector<float> batch = PredictBatch(*net, x, n);
  for (size_t i = 0; i < n; ++i) {
    std::copy(x.begin() + i * in, x.begin() + (i + 1) * in, net->input(1));
    ASSERT_EQ(net->predict_one(), Status::Ok) << net->last_error().message;
    EXPECT_TRUE(BitEqual("predict_one vs row " + std::to_string(i) + " of predict_batch",
                         batch.data() + i * out, net->output(1), out));
    const std::vector<float> alone =
        PredictBatch(*net, std::vector<float>(x.begin() + i * in, x.begin() + (i + 1) * in), 1);
    EXPECT_TRUE(BitEqual("predict_batch of row " + std::to_string(i) + " alone vs in the batch",
                         batch.data() + i * out, alone.data(), out));
  }
  // A different batch around the same row: the row's prediction is unchanged.
  std::vector<float> other = rng.normal_vec(n * in, 5, 3);
  std::copy(x.begin() + 4 * in, x.begin() + 5 * in, other.begin() + 9 * in);
  const std::vector<float> moved = PredictBatch(*net, other, n);
  EXPECT_TRUE(BitEqual("row 4 predicted as row 9 of another batch", batch.data() + 4 * out,
                       moved.data() + 9 * out, out));
}

TEST_P(PredictConsistency, InferenceChangesNothing) {
  auto net = Make(MixedSpec(Adam(0.01), GetParam()));
  ASSERT_NE(net, nullptr);
  Rng rng(221);
  TrainRandom(*net, rng, 3, 8);
  const std::vector<uint8_t> before = net->save();
  const Batch b = RandomBatch(rng, 9, net->input_size(), net->output_size());
  PredictBatch(*net, b.x, 9);
  ASSERT_EQ(net->predict_one(), Status::Ok);
  Stage(*net, b);
  double loss_sum = 0;
  size_t correct = 0;
  ASSERT_EQ(net->evaluate(9, &loss_sum, &correct), Status::Ok) << net->last_error().message;
  EXPECT_TRUE(std::isfinite(loss_sum));
  EXPECT_TRUE(BytesEqual("save() after inference", before, net->save()));
}

INSTANTIATE_TEST_SUITE_P(Network, PredictConsistency,
                         ::testing::Values(LossType::SoftmaxCrossEntropy,
                                           LossType::MeanSquaredError),
                         [](const ::testing::TestParamInfo<LossType>& p) {
                           return p.param == LossType::SoftmaxCrossEntropy ? "softmax" : "mse";
                         });

TEST(NetworkInference, SoftmaxOutputsAreProbabilities) {
  auto net = Make(MixedSpec());
  ASSERT_NE(net, nullptr);
  Rng rng(222);
  TrainRandom(*net, rng, 2, 8);
  const size_t n = 5, out = net->output_size();
  const std::vector<float> y = PredictBatch(*net, rng.normal_vec(n * net->input_size(), 0, 1), n);
  std::vector<double> sums(n, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < out; ++k) {
      EXPECT_GE(y[i * out + k], 0.0f);
      sums[i] += y[i * out + k];
    }
  // A sum of `out` rounded probabilities after a rounded normalization: (out + 2) u.
  EXPECT_TRUE(AllNear("row sums", std::vector<double>(n, 1.0), sums.data(), (out + 2) * kU));
}

// ---- population statistics ---------------------------------------------------------------

// In double from the tensors: dense (in (n, C) -> (n, OC)), batch-norm
// inference, ReLU.
std::vector<double> DenseDouble(const std::vector<double>& in, size_t n, const TensorView* w,
                                const TensorView* b) {
  const size_t OC = size_t(w->shape[0]), C = size_t(w->shape[1]);
  std::vector<double> out(n * OC);
  for (size_t i = 0; i < n; ++i)
    for (size_t o = 0; o < OC; ++o) {
      double s = b->data[o];
      for (size_t c = 0; c < C; ++c) s += double(w->data[o * C + c]) * in[i * C + c];
      out[i * OC + o] = s;
    }
  return out;
}

std::vector<double> BatchNormReluDouble(const std::vector<double>& in, size_t n,
                                        const std::vector<TensorView>& ts, int32_t layer,
                                        double eps) {
  const TensorView* g = Find(ts, layer, "gamma");
  const TensorView* be = Find(ts, layer, "beta");
  const TensorView* rm = Find(ts, layer, "runningMean");
  const TensorView* rv = Find(ts, layer, "runningVariance");
  const size_t C = g->size;
  std::vector<double> out(n * C);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < C; ++c) {
      const double y =
          (in[i * C + c] - rm->data[c]) / std::sqrt(double(rv->data[c]) + eps) * g->data[c] +
          be->data[c];
      out[i * C + c] = y > 0 ? y : 0.0;
    }
  return out;
}

// Per-column mean and variance (divided by n - 1 or n) of an (n, C) array.
void ColumnStats(const std::vector<double>& a, size_t n, size_t C, bool unbiased,
                 std::vector<double>* mean, std::vector<double>* var) {
  mean->assign(C, 0.0);
  var->assign(C, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < C; ++c) (*mean)[c] += a[i * C + c];
  for (double& m : *mean) m /= double(n);
  for (size_t i = 0; i < n; ++i)
    for (size_t c = 0; c < C; ++c)
      (*var)[c] += (a[i * C + c] - (*mean)[c]) * (a[i * C + c] - (*mean)[c]);
  for (double& v : *var) v /= unbiased ? double(n - 1) : double(n);
}

// Population statistics replace a layer's running statistics by the mean and
// variance of its input over all rows added, whatever the chunking; a later
// layer sees the earlier layers' new statistics.
TEST(NetworkPopulation, StatisticsEqualTheMeanAndVarianceOfTheLayerInput) {
  LayerSpec bn_biased = BatchNormLayer();
  bn_biased.set("runningVariance", 0);
  auto net = Make(Spec(3,
                       {DenseLayer(4), BatchNormLayer(), Activation("relu"), DenseLayer(5),
                        bn_biased, DenseLayer(2)},
                       Adam(0.01)));
  ASSERT_NE(net, nullptr);
  Rng rng(290);
  TrainRandom(*net, rng, 3, 8);
  const size_t N = 50, chunks[] = {17, 20, 13};
  std::vector<float> x = rng.normal_vec(N * 3, 1.0, 2.0);
  auto add_all = [&](int32_t layer) {
    ASSERT_EQ(net->population_begin(layer), Status::Ok) << net->last_error().message;
    size_t row = 0;
    for (size_t n : chunks) {
      std::copy(x.begin() + row * 3, x.begin() + (row + n) * 3, net->input(n));
      ASSERT_EQ(net->population_add(n), Status::Ok) << net->last_error().message;
      row += n;
    }
    ASSERT_EQ(net->population_end(), Status::Ok) << net->last_error().message;
  };
  // The core's activations are float32: a few dozen roundings (two dense
  // layers of <= 5 terms, one batch norm) of magnitudes <= max|a|: within
  // 64 u max|a| each. That moves the mean by as much and a variance s^2 by
  // 2 s e + e^2; storing as float adds u.
  auto check = [&](int32_t layer, const std::vector<double>& input, size_t C, bool unbiased) {
    std::vector<double> mean, var;
    ColumnStats(input, N, C, unbiased, &mean, &var);
    double max_abs = 0;
    for (double v : input) max_abs = std::max(max_abs, std::fabs(v));
    const double e = 64 * kU * max_abs;
    std::vector<double> mean_tol(C), var_tol(C);
    for (size_t c = 0; c < C; ++c) {
      mean_tol[c] = e + kU * std::fabs(mean[c]);
      var_tol[c] = 2 * std::sqrt(var[c]) * e + e * e + kU * var[c];
    }
    const auto ts = net->tensors();
    EXPECT_TRUE(AllNear("layer " + std::to_string(layer) + " running mean", mean,
                        Find(ts, layer, "runningMean")->data, mean_tol));
    EXPECT_TRUE(AllNear("layer " + std::to_string(layer) + " running variance", var,
                        Find(ts, layer, "runningVariance")->data, var_tol));
  };
  const std::vector<double> xd(x.begin(), x.end());
  add_all(1);
  {
    const auto ts = net->tensors();
    check(1, DenseDouble(xd, N, Find(ts, 0, "weight"), Find(ts, 0, "bias")), 4, true);
  }
  add_all(4);
  {
    const auto ts = net->tensors();
    const std::vector<double> h = BatchNormReluDouble(
        DenseDouble(xd, N, Find(ts, 0, "weight"), Find(ts, 0, "bias")), N, ts, 1, 1e-5);
    check(4, DenseDouble(h, N, Find(ts, 3, "weight"), Find(ts, 3, "bias")), 5, false);
  }
}

TEST(NetworkPopulation, RefusesMisuseAndChangesNothing) {
  auto net = Make(Spec(3, {DenseLayer(4), BatchNormLayer(), DenseLayer(2)}, Adam(0.01)));
  ASSERT_NE(net, nullptr);
  Rng rng(291);
  TrainRandom(*net, rng, 2, 4);
  const std::vector<uint8_t> before = net->save();
  EXPECT_EQ(net->population_add(1), Status::BadArgument);  // no begin
  EXPECT_EQ(net->population_end(), Status::BadArgument);
  EXPECT_EQ(net->population_begin(0), Status::BadArgument);  // dense, not batch norm
  EXPECT_EQ(net->population_begin(7), Status::BadArgument);  // no such layer
  // One example has no unbiased variance.
  ASSERT_EQ(net->population_begin(1), Status::Ok);
  std::copy_n(rng.normal_vec(3, 0, 1).begin(), 3, net->input(1));
  ASSERT_EQ(net->population_add(1), Status::Ok);
  EXPECT_EQ(net->population_end(), Status::BatchTooSmall);
  // Non-finite rows are refused.
  ASSERT_EQ(net->population_begin(1), Status::Ok);
  net->input(2)[4] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(net->population_add(2), Status::NonFiniteInput);
  EXPECT_EQ(net->last_error().index, 4);
  EXPECT_TRUE(BytesEqual("save() after refused population statistics", before, net->save()));
}

// evaluate() returns the sum over the rows (not the mean) of the loss of the
// inference-mode outputs, and the number of argmax hits.
TEST(NetworkInference, EvaluateSumsTheLossOfThePredictions) {
  for (LossType loss : {LossType::SoftmaxCrossEntropy, LossType::MeanSquaredError}) {
    auto net = Make(MixedSpec(Adam(0.01), loss));
    ASSERT_NE(net, nullptr);
    Rng rng(223);
    TrainRandom(*net, rng, 3, 8);
    const size_t n = 11, K = net->output_size();
    const Batch b = RandomBatch(rng, n, net->input_size(), K);
    const std::vector<float> y = PredictBatch(*net, b.x, n);
    double expected = 0;
    size_t expected_correct = 0;
    for (size_t i = 0; i < n; ++i) {
      const float* yi = y.data() + i * K;
      if (loss == LossType::SoftmaxCrossEntropy) {
        expected -= std::log(double(yi[b.labels[i]]));
        expected_correct += size_t(std::max_element(yi, yi + K) - yi) == size_t(b.labels[i]);
      } else {
        double row = 0;
        for (size_t k = 0; k < K; ++k) {
          const double d = double(yi[k]) - b.targets[i * K + k];
          row += d * d;
        }
        expected += row / K;
      }
    }
    Stage(*net, b);
    double loss_sum = 0;
    size_t correct = 0;
    ASSERT_EQ(net->evaluate(n, &loss_sum, &correct), Status::Ok) << net->last_error().message;
    // The predictions are float32 softmax outputs: each within (K + 8) u of
    // its value relative (layers_test Softmax), which -log turns into an
    // absolute error; for MSE the outputs are the same floats evaluate uses.
    const double tol = loss == LossType::SoftmaxCrossEntropy ? n * (K + 8) * kU : 1e-12 * expected;
    EXPECT_TRUE(Near("evaluate loss sum", expected, loss_sum, tol)) << "loss type " << int(loss);
    if (loss == LossType::SoftmaxCrossEntropy) EXPECT_EQ(correct, expected_correct);
  }
}

// After the first calls have grown the staging and activation buffers,
// training steps and inference allocate nothing.
TEST(NetworkInference, NoAllocationPerCallOnceWarm) {
  {
    // The control: the counter sees an ordinary allocation, as the network's
    // std::vector buffers would make one.
    const size_t before = g_allocations.load();
    std::vector<float> v(10);
    EXPECT_GT(g_allocations.load(), before) << "operator new is not counted";
  }
  for (LossType loss : {LossType::SoftmaxCrossEntropy, LossType::MeanSquaredError}) {
    auto net = Make(MixedSpec(Adam(0.01), loss));
    ASSERT_NE(net, nullptr);
    Rng rng(224);
    const Batch big = RandomBatch(rng, 16, net->input_size(), net->output_size());
    const Batch small = RandomBatch(rng, 5, net->input_size(), net->output_size());
    double l = 0, loss_sum = 0;
    size_t correct = 0;
    // Warm up: the largest batch once through every call.
    Stage(*net, big);
    ASSERT_EQ(net->train_step(16, &l), Status::Ok) << net->last_error().message;
    ASSERT_EQ(net->predict_batch(16), Status::Ok);
    ASSERT_EQ(net->evaluate(16, &loss_sum, &correct), Status::Ok);
    ASSERT_EQ(net->predict_one(), Status::Ok);
    Stage(*net, small);
    const size_t before = g_allocations.load();
    const Status s1 = net->train_step(5, &l);
    const Status s2 = net->predict_one();
    const Status s3 = net->predict_batch(5);
    const Status s4 = net->evaluate(5, &loss_sum, &correct);
    const size_t after_small = g_allocations.load();
    Stage(*net, big);
    const size_t before_big = g_allocations.load();
    const Status s5 = net->train_step(16, &l);
    const Status s6 = net->predict_batch(16);
    const size_t after_big = g_allocations.load();
    for (Status s : {s1, s2, s3, s4, s5, s6}) EXPECT_EQ(s, Status::Ok);
    EXPECT_EQ(after_small - before, 0u)
        << "allocations in train_step(5), predict_one, predict_batch(5), evaluate(5)";
    EXPECT_EQ(after_big - before_big, 0u) << "allocations in train_step(16), predict_batch(16)";
  }
}

// ---- refused steps change nothing -----------------------------------------------------------

class RefusedStep : public ::testing::Test {
 protected:
  void SetUp() override {
    net_ = Make(MixedSpec(Sgd(0.1, 0.9)));
    ASSERT_NE(net_, nullptr);
    Rng rng(230);
    TrainRandom(*net_, rng, 2, 6);
    batch_ = RandomBatch(rng, 6, net_->input_size(), net_->output_size());
    before_ = net_->save();
  }
  // The call failed with `expected`, said so in last_error(), and changed nothing.
  void ExpectRefused(Status got, Status expected, int64_t index = -1) {
    EXPECT_EQ(got, expected);
    EXPECT_EQ(net_->last_error().status, expected);
    EXPECT_FALSE(net_->last_error().message.empty());
    if (index >= 0) EXPECT_EQ(net_->last_error().index, index);
    EXPECT_TRUE(BytesEqual("save() after the refused call", before_, net_->save()));
    EXPECT_EQ(net_->steps(), 2u);
  }
  std::unique_ptr<Network> net_;
  Batch batch_;
  std::vector<uint8_t> before_;
};

TEST_F(RefusedStep, BatchOfOneIsTooSmall) {
  Stage(*net_, batch_);
  double loss = 0;
  ExpectRefused(net_->train_step(1, &loss), Status::BatchTooSmall);
  ExpectRefused(net_->train_step(0, &loss), Status::BatchTooSmall);
}

TEST_F(RefusedStep, NonFiniteInputs) {
  const size_t last = batch_.x.size() - 1;
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (float v : bad)
    for (size_t index : {size_t(0), size_t(7), last}) {
      Batch b = batch_;
      b.x[index] = v;
      SCOPED_TRACE("x[" + std::to_string(index) + "] = " + fmt(v));
      ExpectRefused(Train(*net_, b), Status::NonFiniteInput, int64_t(index));
      if (std::isnan(v))
        EXPECT_TRUE(std::isnan(net_->last_error().value));
      else
        EXPECT_EQ(net_->last_error().value, v);
    }
}

TEST_F(RefusedStep, LabelsOutOfRange) {
  const int32_t out = static_cast<int32_t>(net_->output_size());
  for (int32_t label : {-1, out, out + 100, std::numeric_limits<int32_t>::min()}) {
    Batch b = batch_;
    b.labels[3] = label;
    SCOPED_TRACE("y[3] = " + std::to_string(label));
    ExpectRefused(Train(*net_, b), Status::LabelOutOfRange, 3);
  }
  // The largest valid label is accepted.
  Batch b = batch_;
  b.labels[3] = out - 1;
  EXPECT_EQ(Train(*net_, b), Status::Ok) << net_->last_error().message;
}

TEST_F(RefusedStep, NonFiniteInputsAtInference) {
  const size_t n = 3;
  std::vector<float> x(batch_.x.begin(), batch_.x.begin() + n * net_->input_size());
  x[n * net_->input_size() - 1] = std::numeric_limits<float>::infinity();
  std::copy(x.begin(), x.end(), net_->input(n));
  ExpectRefused(net_->predict_batch(n), Status::NonFiniteInput, int64_t(x.size() - 1));
  net_->input(1)[1] = std::numeric_limits<float>::quiet_NaN();
  ExpectRefused(net_->predict_one(), Status::NonFiniteInput, 1);
}

TEST(NetworkRefusedStep, NonFiniteTargets) {
  auto net = Make(MixedSpec(Adam(0.01), LossType::MeanSquaredError));
  ASSERT_NE(net, nullptr);
  Rng rng(231);
  TrainRandom(*net, rng, 2, 4);
  const std::vector<uint8_t> before = net->save();
  Batch b = RandomBatch(rng, 4, net->input_size(), net->output_size());
  b.targets[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(Train(*net, b), Status::NonFiniteInput);
  EXPECT_EQ(net->last_error().index, 5);
  EXPECT_TRUE(BytesEqual("save() after the refused step", before, net->save()));
}

// A learning rate of 1e30 makes some step non-finite within a few steps; that
// step is refused as Diverged, changes nothing, and stays refused.
class Divergence : public ::testing::TestWithParam<OptimizerType> {};

TEST_P(Divergence, HugeLearningRateIsRefused) {
  const OptimizerSpec opt = GetParam() == OptimizerType::Sgd ? Sgd(1e30) : Adam(1e30);
  auto net = Make(MixedSpec(opt));
  ASSERT_NE(net, nullptr);
  Rng rng(240);
  const Batch b = RandomBatch(rng, 8, net->input_size(), net->output_size(), 3.0);
  Status s = Status::Ok;
  std::vector<uint8_t> before;
  int step = 0;
  for (; step < 10 && s == Status::Ok; ++step) {
    before = net->save();
    s = Train(*net, b);
  }
  ASSERT_EQ(s, Status::Diverged) << "no Diverged in " << step << " steps; last status " << int(s)
                                 << ": " << net->last_error().message;
  EXPECT_EQ(net->last_error().status, Status::Diverged);
  EXPECT_FALSE(net->last_error().message.empty());
  EXPECT_TRUE(BytesEqual("save() after Diverged", before, net->save()));
  // Nothing changed, so the same step is refused again, the same way.
  EXPECT_EQ(Train(*net, b), Status::Diverged);
  EXPECT_TRUE(BytesEqual("save() after a second Diverged", before, net->save()));
}

INSTANTIATE_TEST_SUITE_P(Network, Divergence,
                         ::testing::Values(OptimizerType::Sgd, OptimizerType::Adam),
                         [](const ::testing::TestParamInfo<OptimizerType>& p) {
                           return p.param == OptimizerType::Sgd ? "sgd" : "adam";
                         });

// ---- save and load ------------------------------------------------------------------------

std::unique_ptr<Network> Load(const std::vector<uint8_t>& bytes, Status* status,
                              std::string* why = nullptr) {
  std::unique_ptr<Network> net;
  ErrorInfo error;
  *status = Network::load(bytes.data(), bytes.size(), &net, &error);
  if (why != nullptr) *why = error.message;
  return net;
}

// Targets of 1e20 give gradients of ~1e19 (finite), which a learning rate of
// 1e20 turns into an update beyond float range: refused on the first step,
// and nothing is left behind, its gradients included. The step after it is
// the one a copy saved before the refused step takes: the plain batch's
// gradients of ~1 give a finite update, which the refused step's, had they
// stayed in the arena, would push past float range.
TEST(NetworkDivergence, NonFiniteUpdateIsRefusedAndLeavesNothingBehind) {
  auto net = Make(Spec(3, {DenseLayer(2)}, Sgd(1e20), LossType::MeanSquaredError));
  ASSERT_NE(net, nullptr);
  Rng rng(241);
  Batch huge = RandomBatch(rng, 4, 3, 2);
  for (float& t : huge.targets) t = 1e20f;
  const Batch plain = RandomBatch(rng, 4, 3, 2);
  const std::vector<uint8_t> before = net->save();
  EXPECT_EQ(Train(*net, huge), Status::Diverged) << net->last_error().message;
  EXPECT_TRUE(BytesEqual("save() after Diverged", before, net->save()));
  ASSERT_EQ(Train(*net, plain), Status::Ok) << net->last_error().message;
  Status status;
  auto copy = Load(before, &status);
  ASSERT_EQ(status, Status::Ok);
  ASSERT_EQ(Train(*copy, plain), Status::Ok) << copy->last_error().message;
  EXPECT_TRUE(BytesEqual("the refused step and the next, against the next alone", copy->save(),
                         net->save()));
}

// train_step skips the pass that checks an update first when bounds carried
// from the last update prove it finite (Network::update_is_bounded). A network
// just loaded has no bounds, so a copy loaded from save() before each step
// takes the checked path: both must accept or refuse every step alike and end
// with the same bytes. Targets grow to 1e24 and learning rates to 1e25, so
// steps near and past float range come up (refusals are counted).
TEST(NetworkDivergence, UpdatesTakenWithoutTheCheckAreThoseTheCheckAccepts) {
  const OptimizerSpec optimizers[] = {
      Adam(0.01),          Adam(1.0),  Adam(1e3),      Adam(0.01, 0.9, 0.999, 1e-30),
      Adam(0.01, 0.9, 0.999, 1e-8, 0.5), Adam(1e25), Adam(0.1, 0.5, 0.6),
      Sgd(0.01),           Sgd(0.1, 0.9, true, 0.01),  Sgd(1e10, 0.9), Sgd(1e25)};
  int refused = 0, steps = 0;
  for (size_t o = 0; o < std::size(optimizers); ++o) {
    auto net = Make(MixedSpec(optimizers[o], LossType::MeanSquaredError));
    ASSERT_NE(net, nullptr);
    Rng rng(260 + o);
    for (int step = 0; step < 50; ++step, ++steps) {
      // Scales 1, 10, ..., 1e24, then back to 1 to see a refused network train on.
      const double scale = step < 25 ? std::pow(10.0, step) : 1.0;
      Batch b = RandomBatch(rng, 6, net->input_size(), net->output_size());
      for (float& t : b.targets) t = static_cast<float>(t * scale);
      Status s;
      auto checked = Load(net->save(), &s);
      ASSERT_EQ(s, Status::Ok);
      const Status got = Train(*net, b), want = Train(*checked, b);
      ASSERT_EQ(got, want) << "optimizer " << o << ", step " << step << ": "
                           << net->last_error().message << " / " << checked->last_error().message;
      ASSERT_TRUE(BytesEqual("save() after the step", checked->save(), net->save()))
          << "optimizer " << o << ", step " << step;
      refused += got != Status::Ok;
    }
  }
  // Both paths were taken: most steps trained, and some were refused.
  EXPECT_GT(refused, 10) << "of " << steps;
  EXPECT_LT(refused, steps / 2);
}

class SaveLoad : public ::testing::TestWithParam<OptimizerType> {};

// Round trip byte-identical; then both train one more step identically.
TEST_P(SaveLoad, RoundTripAndTrainingContinuesIdentically) {
  const bool sgd = GetParam() == OptimizerType::Sgd;
  auto a = Make(MixedSpec(sgd ? Sgd(0.05, 0.9, true, 1e-3) : Adam(0.01, 0.9, 0.999, 1e-8, 1e-3),
                          sgd ? LossType::MeanSquaredError : LossType::SoftmaxCrossEntropy));
  ASSERT_NE(a, nullptr);
  Rng rng(250);
  TrainRandom(*a, rng, 3, 8);
  const std::vector<uint8_t> bytes = a->save();
  Status s;
  std::string why;
  auto b = Load(bytes, &s, &why);
  ASSERT_EQ(s, Status::Ok) << why;
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(BytesEqual("save() of the loaded model", bytes, b->save()));
  EXPECT_EQ(b->steps(), a->steps());

  const Batch next = RandomBatch(rng, 8, a->input_size(), a->output_size());
  ASSERT_EQ(Train(*a, next), Status::Ok) << a->last_error().message;
  ASSERT_EQ(Train(*b, next), Status::Ok) << b->last_error().message;
  EXPECT_TRUE(BytesEqual("save() after one more step", a->save(), b->save()));
  const std::vector<float> pa = PredictBatch(*a, next.x, next.rows);
  const std::vector<float> pb = PredictBatch(*b, next.x, next.rows);
  EXPECT_TRUE(BitEqual("predictions", pa.data(), pb.data(), pa.size()));
  // The generator resumes too.
  a->shuffle(20);
  b->shuffle(20);
  EXPECT_TRUE(std::equal(a->indices(20), a->indices(20) + 20, b->indices(20)));
}

INSTANTIATE_TEST_SUITE_P(Network, SaveLoad,
                         ::testing::Values(OptimizerType::Sgd, OptimizerType::Adam),
                         [](const ::testing::TestParamInfo<OptimizerType>& p) {
                           return p.param == OptimizerType::Sgd ? "sgd" : "adam";
                         });

// batches_tracked is PyTorch's num_batches_tracked: one per training step, per
// batch-norm layer. Setting it (as an import does) makes a fresh network with
// the same statistics update them as the network that trained.
TEST(NetworkBatchesTracked, CountsStepsAndSeedsTheRunningAverages) {
  auto a = Make(MixedSpec(Sgd(0.05)));
  ASSERT_NE(a, nullptr);
  Rng rng(31);
  TrainRandom(*a, rng, 3, 8);
  EXPECT_EQ(a->batches_tracked(1), 3);
  EXPECT_EQ(a->batches_tracked(4), 3);
  EXPECT_EQ(a->batches_tracked(0), -1);
  EXPECT_EQ(a->set_batches_tracked(2, 5), Status::BadArgument);

  // b: the same parameters and statistics copied in, the count set; c: the count left at 0.
  auto b = Make(MixedSpec(Sgd(0.05)));
  auto c = Make(MixedSpec(Sgd(0.05)));
  const std::vector<TensorView> ta = a->tensors();
  for (Network* n : {b.get(), c.get()}) {
    const std::vector<TensorView> tn = n->tensors();
    for (size_t i = 0; i < ta.size(); ++i)
      std::copy(ta[i].data, ta[i].data + ta[i].size, tn[i].data);
    n->weights_changed();
  }
  ASSERT_EQ(b->set_batches_tracked(1, 3), Status::Ok);
  ASSERT_EQ(b->set_batches_tracked(4, 3), Status::Ok);
  const Batch next = RandomBatch(rng, 8, a->input_size(), a->output_size());
  for (Network* n : {a.get(), b.get(), c.get()}) ASSERT_EQ(Train(*n, next), Status::Ok);
  for (int32_t layer : {1, 4}) {
    for (const char* name : {"runningMean", "runningVariance"}) {
      const std::vector<float> va = Copy(Find(a->tensors(), layer, name));
      const std::vector<float> vb = Copy(Find(b->tensors(), layer, name));
      const std::vector<float> vc = Copy(Find(c->tensors(), layer, name));
      double diff_b = 0, diff_c = 0;
      for (size_t k = 0; k < va.size(); ++k) {
        diff_b = std::max(diff_b, std::fabs(double(va[k]) - vb[k]) / (std::fabs(va[k]) + 1e-3));
        diff_c = std::max(diff_c, std::fabs(double(va[k]) - vc[k]) / (std::fabs(va[k]) + 1e-3));
      }
      // b rebuilds bias correction's uncorrected average from the corrected one (a few float
      // roundings); c, which forgot the count, weights the new batch as the first one.
      EXPECT_LT(diff_b, 1e-5) << "layer " << layer << " " << name;
      EXPECT_GT(diff_c, 1e-2) << "layer " << layer << " " << name;
    }
  }
}

// A small trained model for the corruption tests: every prefix and every bit
// flip are tried, so keep it small.
std::vector<uint8_t> SmallModelBytes() {
  auto net =
      Make(Spec(2, {DenseLayer(3), BatchNormLayer(), Activation("relu"), DenseLayer(2)},
                Adam(0.01)));
  Rng rng(260);
  TrainRandom(*net, rng, 2, 4);
  return net->save();
}

void WriteU32(std::vector<uint8_t>* bytes, size_t at, uint32_t v) {
  std::memcpy(bytes->data() + at, &v, 4);
}

// Rewrites the trailing CRC-32 so that a deliberate change is not caught by
// the checksum but by the check that the test is about.
void Reseal(std::vector<uint8_t>* bytes) {
  WriteU32(bytes, bytes->size() - 4, crc32(bytes->data(), bytes->size() - 4));
}

::testing::AssertionResult Rejected(const std::vector<uint8_t>& bytes) {
  Status s;
  std::string why;
  auto net = Load(bytes, &s, &why);
  if (s != Status::CorruptModel)
    return ::testing::AssertionFailure()
           << "load returned status " << int(s) << " (" << why << "), expected CorruptModel";
  if (net != nullptr) return ::testing::AssertionFailure() << "load failed but produced a network";
  if (why.empty()) return ::testing::AssertionFailure() << "load failed without saying why";
  return ::testing::AssertionSuccess();
}

TEST(NetworkLoad, Crc32MatchesTheStandardCheckValue) {
  const char* check = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>(check), 9), 0xCBF43926u);
}

TEST(NetworkLoad, AcceptsTheUntouchedModel) {
  // The control for the rejections below: the unmodified bytes and a
  // resealed copy both load.
  std::vector<uint8_t> bytes = SmallModelBytes();
  Status s;
  std::string why;
  EXPECT_NE(Load(bytes, &s, &why), nullptr);
  EXPECT_EQ(s, Status::Ok) << why;
  Reseal(&bytes);
  EXPECT_NE(Load(bytes, &s, &why), nullptr);
  EXPECT_EQ(s, Status::Ok) << why;
}

TEST(NetworkLoad, RejectsEveryTruncation) {
  const std::vector<uint8_t> bytes = SmallModelBytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    // A copy of exactly n bytes, so that reading past it is a sanitizer error.
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);
    ASSERT_TRUE(Rejected(prefix)) << "prefix of " << n << " of " << bytes.size() << " bytes";
  }
}

TEST(NetworkLoad, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = SmallModelBytes();
  bytes.push_back(0);
  EXPECT_TRUE(Rejected(bytes));
}

TEST(NetworkLoad, RejectsEveryFlippedBit) {
  const std::vector<uint8_t> bytes = SmallModelBytes();
  for (size_t i = 0; i < bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = bytes;
      bad[i] ^= static_cast<uint8_t>(1u << bit);
      ASSERT_TRUE(Rejected(bad)) << "bit " << bit << " of byte " << i << " of " << bytes.size();
    }
}

TEST(NetworkLoad, RejectsWrongMagic) {
  std::vector<uint8_t> bytes = SmallModelBytes();
  bytes[0] = 'X';
  Reseal(&bytes);
  EXPECT_TRUE(Rejected(bytes));
}

TEST(NetworkLoad, RejectsWrongVersion) {
  for (uint32_t version : {0u, 4u, 0xFFFFFFFFu}) {
    std::vector<uint8_t> bytes = SmallModelBytes();
    WriteU32(&bytes, 4, version);
    Reseal(&bytes);
    EXPECT_TRUE(Rejected(bytes)) << "version " << version;
  }
}

// The bytes of a model whose stored config `change` edits, resealed: the
// checksum holds, so only the loader's own checks can refuse it.
std::vector<uint8_t> WithConfig(const std::vector<uint8_t>& bytes, void (*change)(Value*)) {
  // Payload: u32 config length, the config's Value bytes, then the rest.
  uint32_t n = 0;
  std::memcpy(&n, bytes.data() + 12, 4);
  Value config;
  size_t used = 0;
  EXPECT_TRUE(Value::read(bytes.data() + 16, n, &config, &used));
  change(&config);
  std::vector<uint8_t> spec;
  config.write(&spec);
  std::vector<uint8_t> out(bytes.begin(), bytes.begin() + 16);
  WriteU32(&out, 12, static_cast<uint32_t>(spec.size()));
  out.insert(out.end(), spec.begin(), spec.end());
  out.insert(out.end(), bytes.begin() + 16 + n, bytes.end());
  WriteU32(&out, 8, static_cast<uint32_t>(out.size() - 16));
  Reseal(&out);
  return out;
}

Value* LayerValue(Value* config, size_t i) {
  return const_cast<Value*>(&config->get("layers")->items()[i]);
}

// Checksum intact, content invalid: the parser's own checks must catch it.
TEST(NetworkLoad, RejectsInvalidContentWithValidChecksum) {
  const std::vector<uint8_t> bytes = SmallModelBytes();
  // SmallModelBytes: dense 3, batch norm, relu, dense 2.
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { c->set("inputSize", Value::number(0)); })))
      << "input size 0";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { c->set("inputSize", Value::number(2.5)); })))
      << "fractional input size";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) {
    const_cast<Value*>(c->get("optimizer"))->set("learningRate", Value::number(-1));
  }))) << "negative learning rate";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) {
    const_cast<Value*>(c->get("optimizer"))->set("learningRate", Value::number(std::nan("")));
  }))) << "NaN learning rate";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { LayerValue(c, 0)->set("units", Value::number(4)); })))
      << "dense units changed: tensor sizes differ";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { LayerValue(c, 1)->set("momentum", Value::number(1)); })))
      << "batch norm momentum 1";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { LayerValue(c, 1)->set("type", Value::string("conv3d")); })))
      << "unknown layer type";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { LayerValue(c, 2)->set("bogus", Value::number(1)); })))
      << "unknown option";
  EXPECT_TRUE(Rejected(WithConfig(bytes, [](Value* c) { *c = Value::array(); })))
      << "a config that is no object";

  std::vector<uint8_t> b = bytes;
  uint32_t n = 0;
  std::memcpy(&n, b.data() + 12, 4);
  WriteU32(&b, 12, n + 1);  // config length beyond its Value
  Reseal(&b);
  EXPECT_TRUE(Rejected(b)) << "config length";

  b = bytes;
  const size_t params_at = 16 + n + 8 + 8 + 4 + 8 * 4 + 4;  // 4 layers
  ASSERT_LT(params_at, b.size());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(b.data() + params_at, &nan, 4);
  Reseal(&b);
  EXPECT_TRUE(Rejected(b)) << "NaN parameter";

  b = bytes;
  const float inf = std::numeric_limits<float>::infinity();
  // The running statistics are the last array, just before the CRC.
  std::memcpy(b.data() + b.size() - 8, &inf, 4);
  Reseal(&b);
  EXPECT_TRUE(Rejected(b)) << "infinite running statistic";
}

// ---- optimizers against hand-computed updates ---------------------------------------------------

// A single dense layer with MSE loss: its gradient is easy to write in double,
// so the optimizer's updates can be followed exactly. PyTorch's rules:
//   SGD:  d = g + wd p; buf = mu buf + d (buf = d on the first step);
//         d = nesterov ? d + mu buf : buf (when mu > 0); p -= lr d
//   Adam: d = g + wd p; m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d^2;
//         p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
struct DenseMseReference {
  size_t C = 3, K = 2, B = 4;
  std::vector<double> p;  // weight (K, C) row-major, then bias (K)
  std::vector<double> grad(const Batch& b) const {
    std::vector<double> g(p.size(), 0.0);
    for (size_t i = 0; i < B; ++i)
      for (size_t k = 0; k < K; ++k) {
        double out = p[K * C + k];
        for (size_t c = 0; c < C; ++c) out += p[k * C + c] * b.x[i * C + c];
        const double dout = 2.0 * (out - b.targets[i * K + k]) / double(B * K);
        for (size_t c = 0; c < C; ++c) g[k * C + c] += dout * b.x[i * C + c];
        g[K * C + k] += dout;
      }
    return g;
  }
};

std::vector<float> DenseParams(Network& net) {
  const auto ts = net.tensors();
  std::vector<float> p = Copy(Find(ts, 0, "weight"));
  const std::vector<float> bias = Copy(Find(ts, 0, "bias"));
  p.insert(p.end(), bias.begin(), bias.end());
  return p;
}

struct OptCase {
  const char* name;
  OptimizerSpec opt;
};

void PrintTo(const OptCase& c, std::ostream* os) { *os << c.name; }

class OptimizerClosedForm : public ::testing::TestWithParam<OptCase> {};

TEST_P(OptimizerClosedForm, StepsMatchHandComputedUpdates) {
  const OptimizerSpec o = GetParam().opt;
  auto net = Make(Spec(3, {DenseLayer(2, Init::GlorotUniform)}, o, LossType::MeanSquaredError));
  ASSERT_NE(net, nullptr);
  DenseMseReference ref;
  const std::vector<float> p0 = DenseParams(*net);
  ASSERT_EQ(p0.size(), 8u);
  ref.p.assign(p0.begin(), p0.end());
  std::vector<double> buf(ref.p.size(), 0.0), m(ref.p.size(), 0.0), v(ref.p.size(), 0.0);
  std::vector<double> tol(ref.p.size(), 0.0);
  Rng rng(270);
  for (int t = 1; t <= 4; ++t) {
    const Batch b = RandomBatch(rng, ref.B, ref.C, ref.K);
    ASSERT_EQ(Train(*net, b), Status::Ok) << net->last_error().message;
    const std::vector<double> g = ref.grad(b);
    for (size_t i = 0; i < ref.p.size(); ++i) {
      double d = g[i] + o.weight_decay * ref.p[i], delta;
      if (o.type == OptimizerType::Sgd) {
        if (o.momentum > 0) {
          buf[i] = t == 1 ? d : o.momentum * buf[i] + d;
          d = o.nesterov ? d + o.momentum * buf[i] : buf[i];
        }
        delta = -o.learning_rate * d;
      } else {
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * d;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * d * d;
        const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
        delta = -o.learning_rate / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + o.epsilon);
      }
      ref.p[i] += delta;
      // Per step: the parameter rounds to float (u |p|), and the update is
      // computed in float from a float gradient: the forward pass and the
      // B-term gradient sums carry ~(B + C + 2) u relative error, the update
      // formula about 10 more roundings. Twice that, summed over the steps.
      tol[i] += 2 * kU * (std::fabs(ref.p[i]) + (ref.B + ref.C + 12) * std::fabs(delta));
    }
    const std::vector<float> p = DenseParams(*net);
    ASSERT_TRUE(AllNear("parameters after step " + std::to_string(t), ref.p, p.data(), tol))
        << GetParam().name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Network, OptimizerClosedForm,
    ::testing::Values(OptCase{"sgd", Sgd(0.1)}, OptCase{"sgd_momentum", Sgd(0.1, 0.9)},
                      OptCase{"sgd_nesterov_decay", Sgd(0.1, 0.8, true, 0.05)},
                      OptCase{"sgd_decay", Sgd(0.1, 0, false, 0.05)},
                      // A large eps and unusual betas, so eps's place in the
                      // formula and both bias corrections all show.
                      OptCase{"adam", Adam(0.01, 0.8, 0.95, 1e-2)},
                      OptCase{"adam_decay", Adam(0.02, 0.9, 0.99, 1e-3, 0.05)}),
    [](const ::testing::TestParamInfo<OptCase>& p) { return std::string(p.param.name); });

// ---- initialization ---------------------------------------------------------------------------

TEST(NetworkInit, SeedIsReproducible) {
  NetworkSpec spec = MixedSpec();
  auto a = Make(spec), b = Make(spec);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(BytesEqual("two networks from the same seed", a->save(), b->save()));
  spec.seed += 1;
  auto c = Make(spec);
  ASSERT_NE(c, nullptr);
  const std::vector<float> wa = Copy(Find(a->tensors(), 0, "weight"));
  const std::vector<float> wc = Copy(Find(c->tensors(), 0, "weight"));
  ASSERT_EQ(wa.size(), wc.size());
  size_t same = 0;
  for (size_t i = 0; i < wa.size(); ++i) same += wa[i] == wc[i];
  EXPECT_EQ(same, 0u) << "weights shared between seeds " << spec.seed - 1 << " and " << spec.seed;
}

// Uniform(-limit, limit) weights: none beyond the limit; with n draws the
// largest |w| is below 0.9 limit with probability 0.9^n (< 1e-5 for n >= 110),
// which separates He's limit from Glorot's in each layer below; and the
// sample variance is limit^2 / 3 within 5 standard errors (the variance of
// w^2 for a uniform is 4 limit^4 / 45).
void ExpectUniform(const std::vector<float>& w, double limit, const std::string& what) {
  double max_abs = 0, sum2 = 0;
  for (float x : w) {
    max_abs = std::max(max_abs, std::fabs(double(x)));
    sum2 += double(x) * x;
  }
  // float(limit * u) may round up by half an ulp.
  EXPECT_LE(max_abs, limit * (1 + kU)) << what << ": limit " << limit;
  EXPECT_GE(max_abs, 0.9 * limit) << what << ": limit " << limit;
  const double n = double(w.size());
  const double var = sum2 / n, expected = limit * limit / 3;
  const double se = std::sqrt(4.0 / 45.0 / n) * limit * limit;
  EXPECT_NEAR(var, expected, 5 * se) << what;
}

TEST(NetworkInit, HeAndGlorotLimits) {
  // Auto: He for a dense layer feeding ReLU (also through batch norm),
  // Glorot otherwise.
  auto net =
      Make(Spec(64,
                {DenseLayer(32), Activation("relu"), DenseLayer(16), BatchNormLayer(),
                 Activation("relu"), DenseLayer(8), Activation("tanh"),
                 DenseLayer(24, Init::HeUniform), Activation("sigmoid"),
                 DenseLayer(10, Init::GlorotUniform), Activation("relu")},
                Adam(0.01)));
  ASSERT_NE(net, nullptr);
  const auto ts = net->tensors();
  ExpectUniform(Copy(Find(ts, 0, "weight")), std::sqrt(6.0 / 64), "layer 0 (auto -> He)");
  ExpectUniform(Copy(Find(ts, 2, "weight")), std::sqrt(6.0 / 32),
                "layer 2 (auto -> He through batch norm)");
  ExpectUniform(Copy(Find(ts, 5, "weight")), std::sqrt(6.0 / (16 + 8)), "layer 5 (auto -> Glorot)");
  ExpectUniform(Copy(Find(ts, 7, "weight")), std::sqrt(6.0 / 8), "layer 7 (He)");
  ExpectUniform(Copy(Find(ts, 9, "weight")), std::sqrt(6.0 / (24 + 10)), "layer 9 (Glorot)");
  for (int layer : {0, 2, 5, 7, 9}) {
    const std::vector<float> bias = Copy(Find(ts, layer, "bias"));
    EXPECT_TRUE(AllNear("layer " + std::to_string(layer) + " bias",
                        std::vector<double>(bias.size(), 0.0), bias.data(), 0.0));
  }
  EXPECT_TRUE(AllNear("gamma", std::vector<double>(16, 1.0), Find(ts, 3, "gamma")->data, 0.0));
  EXPECT_TRUE(AllNear("beta", std::vector<double>(16, 0.0), Find(ts, 3, "beta")->data, 0.0));
}

TEST(NetworkInit, NormalHasTheRequestedSpread) {
  LayerSpec d = DenseLayer(64, Init::Normal);
  d.set("initStd", 0.05);
  auto net = Make(Spec(64, {d}, Adam(0.01)));
  ASSERT_NE(net, nullptr);
  const std::vector<float> w = Copy(Find(net->tensors(), 0, "weight"));
  double sum = 0, sum2 = 0;
  for (float x : w) {
    sum += x;
    sum2 += double(x) * x;
  }
  const double n = double(w.size());
  // 5 standard errors: of the mean, std / sqrt(n); of the variance, std^2 sqrt(2 / n).
  EXPECT_NEAR(sum / n, 0.0, 5 * 0.05 / std::sqrt(n));
  EXPECT_NEAR(sum2 / n, 0.05 * 0.05, 5 * 0.05 * 0.05 * std::sqrt(2 / n));
}

TEST(NetworkInit, InvalidConfigurationsAreRefusedNamingTheField) {
  LayerSpec both = BatchNormLayer();
  both.set("statistics", 1).set("biasCorrection", 1);
  LayerSpec no_eps = BatchNormLayer();
  no_eps.set("epsilon", 0);
  struct Case {
    NetworkSpec spec;
    const char* where;
    const char* message;  // how the message starts: the field at fault
  };
  const Case bad[] = {
      {Spec(0, {DenseLayer(2)}, Adam(0.01)), "config", "inputSize must be an integer in [1, 16777216]"},
      {Spec(3, {DenseLayer(0)}, Adam(0.01)), "layers[0]", "units must be an integer in [1, 16777216]"},
      {Spec(3, {DenseLayer(2)}, Adam(-0.1)), "optimizer", "learningRate must be a finite number >= 0"},
      {Spec(3, {DenseLayer(2)}, Adam(std::numeric_limits<double>::infinity())), "optimizer", "learningRate"},
      {Spec(3, {DenseLayer(2)}, Sgd(0.1, 1.0)), "optimizer", "momentum must be a finite number in [0, 1)"},
      {Spec(3, {DenseLayer(2)}, Sgd(0.1, 0.0, true)), "optimizer", "nesterov needs momentum > 0"},
      {Spec(3, {DenseLayer(2)}, Adam(0.01, 1.0)), "optimizer", "beta1"},
      {Spec(3, {DenseLayer(2)}, Adam(0.01, 0.9, 0.999, 0.0)), "optimizer", "epsilon must be a finite number > 0"},
      {Spec(3, {BatchNormLayer(1.0), DenseLayer(2)}, Adam(0.01)), "layers[0]", "momentum"},
      {Spec(3, {both, DenseLayer(2)}, Adam(0.01)), "layers[0]", "biasCorrection applies to statistics 'ema' only"},
      {Spec(3, {no_eps, DenseLayer(2)}, Adam(0.01)), "layers[0]", "epsilon"},
      {Spec(3, {DenseLayer(1)}, Adam(0.01)), "config", "loss needs at least 2 outputs, the last layer has 1"},
      // 16384 x 16385 weights and 16385 biases are just over 2^28: the layer that crosses the limit is named.
      {Spec(16384, {DenseLayer(16385), DenseLayer(2)}, Adam(0.01)), "layers[0]", "brings the network to 268468225 weights"},
  };
  for (const Case& c : bad) {
    std::unique_ptr<Network> net;
    ErrorInfo error;
    EXPECT_EQ(Network::create(c.spec, &net, &error), Status::InvalidConfig) << c.message;
    EXPECT_EQ(net, nullptr) << c.message;
    EXPECT_EQ(error.argument, Argument::Spec) << c.message;
    EXPECT_EQ(error.where, c.where) << error.message;
    EXPECT_EQ(error.message.rfind(c.message, 0), 0u) << "message: " << error.message;
  }
}

TEST(NetworkInit, LearningRateZeroOnlyRefreshesTheRunningStatistics) {
  auto net = Make(MixedSpec(Sgd(0.0, 0.9)));
  Rng rng(5);
  const std::vector<float> before(net->tensors()[0].data, net->tensors()[0].data + net->tensors()[0].size);
  const Batch b = RandomBatch(rng, 16, net->input_size(), net->output_size());
  ASSERT_EQ(Train(*net, b), Status::Ok) << net->last_error().message;
  for (const TensorView& t : net->tensors()) {
    if (t.trainable) continue;
    bool moved = false;  // the running statistics took this batch in
    for (size_t k = 0; k < t.size; ++k) moved = moved || t.data[k] != (std::string(t.name) == "runningVariance" ? 1.0f : 0.0f);
    EXPECT_TRUE(moved) << t.layer << " " << t.name;
  }
  const TensorView w = net->tensors()[0];
  EXPECT_EQ(std::vector<float>(w.data, w.data + w.size), before);
}

TEST(NetworkInference, FoldedNetworkPredictsTheSameWithoutBatchNorm) {
  auto net = Make(MixedSpec(Adam(0.01)));
  Rng rng(9);
  for (int step = 0; step < 20; ++step) ASSERT_EQ(Train(*net, RandomBatch(rng, 16, net->input_size(), net->output_size())), Status::Ok);
  std::unique_ptr<Network> folded = net->folded();
  size_t bn_before = 0, bn_after = 0;
  for (const LayerSpec& l : net->spec().layers) bn_before += std::string(l.def->name) == "batchNorm";
  for (const LayerSpec& l : folded->spec().layers) bn_after += std::string(l.def->name) == "batchNorm";
  EXPECT_GT(bn_before, bn_after);
  const Batch b = RandomBatch(rng, 9, net->input_size(), net->output_size());
  std::copy(b.x.begin(), b.x.end(), net->input(9));
  std::copy(b.x.begin(), b.x.end(), folded->input(9));
  ASSERT_EQ(net->predict_batch(9), Status::Ok);
  ASSERT_EQ(folded->predict_batch(9), Status::Ok);
  const float* want = net->output(9);
  const float* got = folded->output(9);
  // Folding reorders float32 rounding only: outputs are probabilities in [0, 1].
  for (size_t k = 0; k < 9 * net->output_size(); ++k) EXPECT_NEAR(got[k], want[k], 2e-6) << k;
}

// Inference runs dense -> batch norm -> ReLU (and dense -> ReLU) as one pass,
// the GEMM storing through an epilogue. It must equal the layers run one after
// another bit for bit, for one row (the matrix-vector kernel) and for batches.
TEST(NetworkInference, FusedDenseChainsEqualTheLayersInTurn) {
  const size_t I = 37, H1 = 29, H2 = 13, O = 5;
  auto net = Make(Spec(int32_t(I),
                       {DenseLayer(int32_t(H1), Init::Auto, false), BatchNormLayer(), Activation("relu"),
                        DenseLayer(int32_t(H2)), Activation("relu"), DenseLayer(int32_t(O), Init::Auto, false),
                        BatchNormLayer()},
                       Adam(0.01), LossType::MeanSquaredError));
  ASSERT_NE(net, nullptr);
  Rng rng(515);
  // Running statistics away from their initial 0 and 1, so the batch norm's scale and shift matter.
  for (const TensorView& t : net->tensors()) {
    const bool var = std::strcmp(t.name, "runningVariance") == 0;
    for (size_t i = 0; i < t.size; ++i) t.data[i] = static_cast<float>(var ? rng.uniform(0.2, 2) : rng.uniform(-1, 1));
  }
  net->weights_changed();
  const auto ts = net->tensors();
  // One dense layer, as the unfused forward computes it.
  const auto dense = [&](std::vector<float>& out, const std::vector<float>& in, int32_t layer, size_t B,
                         size_t C, size_t OC) {
    std::vector<float> wt(f32_packed_size(C, OC));
    f32_pack_t_x8(wt.data(), Find(ts, layer, "weight")->data, C, OC);
    const TensorView* bias = Find(ts, layer, "bias");
    out.assign(B * OC, 0.0f);
    dense_forward(out.data(), in.data(), wt.data(), bias != nullptr ? bias->data : nullptr, B, C, OC);
  };
  const auto batch_norm = [&](std::vector<float>& x, int32_t layer, size_t B, size_t C) {
    batchnorm_forward_infer(x.data(), x.data(), Find(ts, layer, "gamma")->data, Find(ts, layer, "beta")->data,
                            Find(ts, layer, "runningMean")->data, Find(ts, layer, "runningVariance")->data,
                            B, C, 1e-5f);
  };
  for (const size_t B : {size_t(1), size_t(6), size_t(64)}) {
    const std::vector<float> x = rng.normal_vec(B * I, 0, 1);
    std::vector<float> h1, h2, want;
    dense(h1, x, 0, B, I, H1);
    batch_norm(h1, 1, B, H1);
    relu_forward(h1.data(), h1.data(), h1.size());
    dense(h2, h1, 3, B, H1, H2);
    relu_forward(h2.data(), h2.data(), h2.size());
    dense(want, h2, 5, B, H2, O);
    batch_norm(want, 6, B, O);
    const std::vector<float> got = PredictBatch(*net, x, B);
    EXPECT_TRUE(BitEqual("the network's output", want.data(), got.data(), want.size())) << "B=" << B;
    // A chain stops at the layer asked for: the first dense layer's own output, unfused.
    std::vector<float> z;
    dense(z, x, 0, B, I, H1);
    std::copy(x.begin(), x.end(), net->input(B));
    ASSERT_EQ(net->forward_to(B, 0), Status::Ok);
    EXPECT_TRUE(BitEqual("layer 0's output", z.data(), net->layer_output(0), z.size())) << "B=" << B;
  }
}

std::vector<uint8_t> ValueBytes(const Value& v) {
  std::vector<uint8_t> out;
  v.write(&out);
  return out;
}

// A spec's Value reads back to the same spec, every option written out.
TEST(SpecEncoding, ValueRoundTrip) {
  const NetworkSpec spec = MixedSpec(Sgd(0.05, 0.9, true, 1e-3));
  const Value v = network_value(spec);
  NetworkSpec back;
  SpecFailure why;
  ASSERT_TRUE(parse_network(v, &back, &why)) << why.where << ": " << why.error.message;
  EXPECT_EQ(ValueBytes(network_value(back)), ValueBytes(v));
  // A layer holds every option of its type, defaults included.
  const Value& bn = v.get("layers")->items()[1];
  for (const char* option : {"momentum", "epsilon", "runningVariance", "statistics", "biasCorrection", "renorm"})
    EXPECT_NE(bn.get(option), nullptr) << option;
  EXPECT_TRUE(bn.get("renorm")->is_null());
}

// Model files of formats 1 and 2 stored a flat vector with one fixed record
// per layer: a dense + batch norm + ReLU + dense network written by hand reads
// back to its config. (tests/js/legacy-models.test.js loads real 0.1 files.)
TEST(SpecEncoding, ReadsTheFlatSpecsOfFormats1And2) {
  // header: input 3, softmax, seed 7, sgd, lr 0.05, momentum 0.9, nesterov, beta1, beta2, eps, wd, 4 layers
  const std::vector<double> header = {3, 0, 7, 0, 0.05, 0.9, 1, 0.9, 0.999, 1e-8, 0, 4};
  const std::vector<std::vector<double>> layers = {
      {0, 5, 0, 1, 0.01, 0.9, 1e-5, 1, 0, 0, 0, 0},    // dense 5, no bias, He
      {1, 0, 1, 0, 0.01, 0.8, 1e-3, 0, 1, 0, 0, 0},    // batch norm, biased, cumulative
      {2, 0, 1, 0, 0.01, 0.9, 1e-5, 1, 0, 0, 0, 0},    // relu
      {0, 2, 1, 0, 0.01, 0.9, 1e-5, 1, 0, 0, 0, 0}};   // dense 2
  for (uint32_t format : {1u, 2u}) {
    std::vector<double> v = header;
    if (format == 2) v.insert(v.end(), {0, 0, 0});  // flat input
    for (const auto& l : layers) {
      v.insert(v.end(), l.begin(), l.end());
      if (format == 2) v.insert(v.end(), {0, 0, 1, 1, 0, 0, 0});
    }
    NetworkSpec spec;
    SpecFailure why;
    ASSERT_TRUE(decode_legacy_spec(v.data(), v.size(), format, &spec, &why))
        << "format " << format << ": " << why.where << ": " << why.error.message;
    ASSERT_EQ(spec.layers.size(), 4u);
    EXPECT_STREQ(spec.layers[0].def->name, "dense");
    EXPECT_EQ(spec.layers[0].get("units"), 5);
    EXPECT_EQ(spec.layers[0].get("useBias"), 0);
    EXPECT_EQ(spec.layers[0].get("init"), static_cast<double>(Init::HeUniform));
    EXPECT_EQ(spec.layers[1].get("momentum"), 0.8);
    EXPECT_EQ(spec.layers[1].get("epsilon"), 1e-3);
    EXPECT_EQ(spec.layers[1].get("runningVariance"), 0);  // biased
    EXPECT_EQ(spec.layers[1].get("statistics"), 1);       // cumulative
    EXPECT_STREQ(spec.layers[2].def->name, "relu");
    EXPECT_EQ(spec.optimizer.type, OptimizerType::Sgd);
    EXPECT_TRUE(spec.optimizer.nesterov);
    EXPECT_EQ(spec.seed, 7u);
    // A value out of range is refused as parse_network refuses it: a type index beyond the list.
    v[v.size() - (format == 2 ? 19 : 12)] = 10;
    EXPECT_FALSE(decode_legacy_spec(v.data(), v.size(), format, &spec, &why));
    EXPECT_EQ(why.where, "layers[3]");
    // And a length that does not match the layer count.
    EXPECT_FALSE(decode_legacy_spec(v.data(), v.size() - 1, format, &spec, &why));
  }
}

// ---- learning -----------------------------------------------------------------------------------

// XOR of the signs of two coordinates, kept 0.1 away from the axes: not
// linearly separable, so it needs the hidden layers.
Batch XorData(Rng& rng, size_t n) {
  Batch b;
  b.rows = n;
  for (size_t i = 0; i < n; ++i) {
    float p[2];
    for (float& c : p) c = static_cast<float>((rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(0.1, 1));
    b.x.insert(b.x.end(), p, p + 2);
    b.labels.push_back((p[0] > 0) != (p[1] > 0) ? 1 : 0);
    b.targets.insert(b.targets.end(), {0.0f, 0.0f});
  }
  return b;
}

TEST(NetworkLearning, LearnsXor) {
  auto net =
      Make(Spec(2,
                {DenseLayer(16), BatchNormLayer(), Activation("relu"), DenseLayer(16),
                 BatchNormLayer(), Activation("relu"), DenseLayer(2)},
                Adam(0.02), LossType::SoftmaxCrossEntropy, 3));
  ASSERT_NE(net, nullptr);
  Rng rng(280);
  const Batch train = XorData(rng, 256), test = XorData(rng, 256);
  auto evaluate = [&net](const Batch& data, double* loss) {
    Stage(*net, data);
    size_t correct = 0;
    EXPECT_EQ(net->evaluate(data.rows, loss, &correct), Status::Ok) << net->last_error().message;
    *loss /= double(data.rows);
    return double(correct) / double(data.rows);
  };
  double loss_before = 0;
  evaluate(train, &loss_before);
  const size_t B = 32;
  Batch mb;
  mb.rows = B;
  for (int epoch = 0; epoch < 40; ++epoch) {  // 40 epochs of 8 steps: 320 steps
    net->shuffle(train.rows);
    const std::vector<uint32_t> order(net->indices(train.rows),
                                      net->indices(train.rows) + train.rows);
    for (size_t start = 0; start + B <= train.rows; start += B) {
      mb.x.clear();
      mb.labels.clear();
      mb.targets.clear();
      for (size_t i = start; i < start + B; ++i) {
        const uint32_t r = order[i];
        mb.x.insert(mb.x.end(), train.x.begin() + 2 * r, train.x.begin() + 2 * r + 2);
        mb.labels.push_back(train.labels[r]);
        mb.targets.insert(mb.targets.end(), {0.0f, 0.0f});
      }
      ASSERT_EQ(Train(*net, mb), Status::Ok) << net->last_error().message;
    }
  }
  double train_loss = 0, test_loss = 0;
  const double train_acc = evaluate(train, &train_loss), test_acc = evaluate(test, &test_loss);
  // Chance is 0.5; a 0.1 margin around the axes makes the classes cleanly separable.
  EXPECT_GE(train_acc, 0.99) << "training loss " << train_loss;
  EXPECT_GE(test_acc, 0.97) << "test loss " << test_loss;
  EXPECT_LT(train_loss, 0.2 * loss_before);
}

TEST(NetworkLearning, ShuffleIsAPermutation) {
  auto net = Make(MixedSpec());
  ASSERT_NE(net, nullptr);
  for (size_t n : {0u, 1u, 2u, 17u, 100u}) {
    net->shuffle(n);
    std::vector<uint32_t> idx(net->indices(n), net->indices(n) + n);
    std::sort(idx.begin(), idx.end());
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(idx[i], i) << "n=" << n;
  }
}

// ---- convolutional networks ---------------------------------------------------------------------

LayerSpec ConvLayer(int32_t filters, int32_t kh, int32_t kw, int32_t stride = 1, int32_t pad = 0,
                    bool same = false, bool use_bias = true) {
  LayerSpec l = LayerSpec::of("conv2d").set("filters", filters).set("useBias", use_bias);
  l.set("kernelSize", kh, 0).set("kernelSize", kw, 1).set("stride", stride, 0).set("stride", stride, 1);
  l.set("padding", static_cast<double>(same ? PadMode::Same : PadMode::Explicit));
  for (size_t k = 1; k <= 4; ++k) l.set("padding", same ? 0 : pad, k);
  return l;
}

LayerSpec PoolLayer(const char* type, int32_t size, int32_t stride) {
  LayerSpec l = LayerSpec::of(type);
  l.set("poolSize", size, 0).set("poolSize", size, 1).set("stride", stride, 0).set("stride", stride, 1);
  return l;
}

NetworkSpec ImageSpec(int32_t c, int32_t h, int32_t w, std::vector<LayerSpec> layers,
                      OptimizerSpec opt = Adam(0.01), uint32_t seed = 5) {
  NetworkSpec s = Spec(c * h * w, std::move(layers), opt, LossType::SoftmaxCrossEntropy, seed);
  s.input_channels = c;
  s.input_height = h;
  s.input_width = w;
  return s;
}

// Every conv-side layer, sizes off the kernel tiles: 'same' with an even
// kernel, stride 2 with padding, max and average pooling, global pooling,
// an explicit flatten and a dense layer reading a conv output directly.
NetworkSpec ConvMixedSpec(bool global = false) {
  LayerSpec bn_corrected = BatchNormLayer(0.8);
  bn_corrected.set("biasCorrection", 1);
  LayerSpec bn_renorm = BatchNormLayer();
  bn_renorm.set("renorm", 1).set("renorm", 2, 1).set("renorm", 1, 2);  // present, rMax 2, dMax 1
  std::vector<LayerSpec> layers = {
      ConvLayer(5, 3, 3, 1, 0, true, false), bn_corrected,
      Activation("relu"),           PoolLayer("maxPool2d", 2, 2),
      ConvLayer(6, 2, 2, 1, 0, true),        bn_renorm,
      Activation("tanh"),           ConvLayer(4, 3, 3, 2, 1),
      PoolLayer("avgPool2d", 2, 1)};
  if (global) {
    layers.push_back(Activation("relu"));
    layers.push_back(LayerSpec::of("globalAvgPool"));
  } else {
    layers.push_back(LayerSpec::of("flatten"));
  }
  layers.push_back(DenseLayer(7, Init::Auto, false));
  layers.push_back(BatchNormLayer());
  layers.push_back(Activation("relu"));
  layers.push_back(DenseLayer(3));
  return ImageSpec(2, 9, 11, layers);
}

TEST(ConvNetwork, ShapesFlowThroughTheLayers) {
  auto net = Make(ConvMixedSpec());
  ASSERT_NE(net, nullptr);
  // 2x9x11 -> conv 5 same -> 5x9x11 -> pool 2 -> 5x4x5 -> conv 6 2x2 same -> 6x4x5
  // -> conv 4 3x3 stride 2 pad 1 -> 4x2x3 -> avg pool 2 stride 1 -> 4x1x2 -> flatten 8
  const size_t widths[] = {495, 495, 495, 100, 120, 120, 120, 24, 8, 8, 7, 7, 7, 3};
  ASSERT_EQ(net->layer_count(), 14u);
  for (int32_t i = 0; i < 14; ++i) EXPECT_EQ(net->layer_width(i), widths[i]) << "layer " << i;
  EXPECT_EQ(net->channels(1), 5u);
  EXPECT_EQ(net->channels(5), 6u);
  EXPECT_EQ(net->channels(11), 7u);
  const auto ts = net->tensors();
  const TensorView* w0 = Find(ts, 0, "weight");
  ASSERT_NE(w0, nullptr);
  EXPECT_EQ(w0->shape, (std::vector<int32_t>{5, 2, 3, 3}));
  EXPECT_EQ(Find(ts, 0, "bias"), nullptr);
  EXPECT_EQ(Find(ts, 4, "weight")->shape, (std::vector<int32_t>{6, 5, 2, 2}));
  EXPECT_EQ(Find(ts, 4, "bias")->shape, (std::vector<int32_t>{6}));
  EXPECT_EQ(Find(ts, 5, "runningVariance")->shape, (std::vector<int32_t>{6}));
  EXPECT_EQ(Find(ts, 10, "weight")->shape, (std::vector<int32_t>{7, 8}));
}

TEST(ConvNetwork, PredictOneEqualsBatchRowsBitForBit) {
  for (bool global : {false, true}) {
    auto net = Make(ConvMixedSpec(global));
    ASSERT_NE(net, nullptr);
    Rng rng(300);
    TrainRandom(*net, rng, 3, 6);
    const size_t n = 5, d = net->input_size(), k = net->output_size();
    const std::vector<float> x = rng.normal_vec(n * d, 0, 1);
    const std::vector<float> batch = PredictBatch(*net, x, n);
    for (size_t i = 0; i < n; ++i) {
      std::copy(x.begin() + i * d, x.begin() + (i + 1) * d, net->input(1));
      ASSERT_EQ(net->predict_one(), Status::Ok);
      EXPECT_TRUE(BitEqual("row " + std::to_string(i), batch.data() + i * k, net->output(1), k))
          << (global ? "globalAvgPool" : "flatten");
    }
  }
}

// Batch norm after a conv layer: the batch statistics are per channel over
// B x H x W values, and the running variance takes m / (m - 1) with m = B H W.
TEST(ConvNetwork, RunningStatisticsArePerChannelOverBatchAndPositions) {
  auto net = Make(ImageSpec(
      2, 4, 3, {ConvLayer(3, 3, 3, 1, 0, true), BatchNormLayer(0.7), DenseLayer(2)}, Sgd(0.05)));
  ASSERT_NE(net, nullptr);
  Rng rng(310);
  const size_t B = 4, C = 3, S = 12;
  const Batch b = RandomBatch(rng, B, net->input_size(), 2);
  // The conv output in inference mode is what training normalizes (conv has no mode).
  Stage(*net, b);
  ASSERT_EQ(net->forward_to(B, 0), Status::Ok);
  const std::vector<float> z(net->layer_output(0), net->layer_output(0) + B * C * S);
  ASSERT_EQ(Train(*net, b), Status::Ok) << net->last_error().message;
  const auto ts = net->tensors();
  const float* rm = Find(ts, 1, "runningMean")->data;
  const float* rv = Find(ts, 1, "runningVariance")->data;
  std::vector<double> em(C), ev(C), tm(C), tv(C);
  for (size_t c = 0; c < C; ++c) {
    double s = 0, q = 0, mx = 0;
    for (size_t i = 0; i < B; ++i)
      for (size_t p = 0; p < S; ++p) {
        s += z[(i * C + c) * S + p];
        mx = std::max(mx, std::fabs(double(z[(i * C + c) * S + p])));
      }
    const double mean = s / (B * S);
    for (size_t i = 0; i < B; ++i)
      for (size_t p = 0; p < S; ++p) q += std::pow(z[(i * C + c) * S + p] - mean, 2);
    em[c] = 0.3 * mean;
    ev[c] = 0.7 + 0.3 * q / (B * S - 1);
    // The float statistics (S + 3) u of max|z| (kernel bound), then the update's rounding.
    tm[c] = 0.3 * (S + 3) * kU * mx + 2 * kU * std::fabs(em[c]);
    tv[c] = 0.3 * (S + 8) * kU * (q / (B * S - 1) + mx * mx) + 3 * kU * ev[c];
  }
  EXPECT_TRUE(AllNear("running mean", em, rm, tm));
  EXPECT_TRUE(AllNear("running variance (m = B H W = 48)", ev, rv, tv));
}

TEST(ConvNetwork, PopulationStatisticsArePerChannel) {
  auto net = Make(ImageSpec(1, 5, 5, {ConvLayer(2, 3, 3), BatchNormLayer(), DenseLayer(2)}));
  ASSERT_NE(net, nullptr);
  Rng rng(320);
  const size_t n = 7, C = 2, S = 9;
  const std::vector<float> x = rng.normal_vec(n * 25, 1, 2);
  std::copy(x.begin(), x.end(), net->input(n));
  ASSERT_EQ(net->forward_to(n, 0), Status::Ok);
  const std::vector<float> z(net->layer_output(0), net->layer_output(0) + n * C * S);
  ASSERT_EQ(net->population_begin(1), Status::Ok);
  for (size_t start = 0; start < n; start += 3) {  // chunks of 3, 3 and 1 rows
    const size_t m = std::min<size_t>(3, n - start);
    std::copy(x.begin() + start * 25, x.begin() + (start + m) * 25, net->input(m));
    ASSERT_EQ(net->population_add(m), Status::Ok);
  }
  ASSERT_EQ(net->population_end(), Status::Ok);
  const auto ts = net->tensors();
  std::vector<double> em(C), ev(C), tm(C), tv(C);
  for (size_t c = 0; c < C; ++c) {
    double s = 0, q = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t p = 0; p < S; ++p) s += z[(i * C + c) * S + p];
    em[c] = s / (n * S);
    for (size_t i = 0; i < n; ++i)
      for (size_t p = 0; p < S; ++p) q += std::pow(z[(i * C + c) * S + p] - em[c], 2);
    ev[c] = q / (n * S - 1);
    // float64 statistics rounded once to float.
    tm[c] = kU * std::fabs(em[c]) + 1e-12;
    tv[c] = kU * ev[c] + 1e-12;
  }
  EXPECT_TRUE(AllNear("mean", em, Find(ts, 1, "runningMean")->data, tm));
  EXPECT_TRUE(AllNear("variance", ev, Find(ts, 1, "runningVariance")->data, tv));
}

TEST(ConvNetwork, SaveLoadRoundTripAndTrainingContinuesIdentically) {
  auto a = Make(ConvMixedSpec());
  ASSERT_NE(a, nullptr);
  Rng rng(330);
  TrainRandom(*a, rng, 2, 5);
  const std::vector<uint8_t> bytes = a->save();
  Status st;
  std::string why;
  auto b = Load(bytes, &st, &why);
  ASSERT_EQ(st, Status::Ok) << why;
  EXPECT_EQ(ValueBytes(network_value(b->spec())), ValueBytes(network_value(a->spec())));
  Rng r1(331), r2(331);
  TrainRandom(*a, r1, 2, 5);
  TrainRandom(*b, r2, 2, 5);
  EXPECT_TRUE(BytesEqual("model after two more steps", a->save(), b->save()));
}

TEST(ConvNetwork, NoAllocationInPredictOne) {
  auto net = Make(ConvMixedSpec());
  ASSERT_NE(net, nullptr);
  Rng rng(340);
  const std::vector<float> x = rng.normal_vec(net->input_size(), 0, 1);
  std::copy(x.begin(), x.end(), net->input(1));
  ASSERT_EQ(net->predict_one(), Status::Ok);
  const size_t before = g_allocations.load();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(net->predict_one(), Status::Ok);
  EXPECT_EQ(g_allocations.load(), before);
}

// Conv weights are initialised as dense ones, with fan_in = C * KH * KW and
// fan_out = F * KH * KW (PyTorch's and Keras's fans): He through batch norm
// into ReLU, Glorot otherwise.
TEST(ConvNetwork, InitUsesTheConvFans) {
  auto net = Make(ImageSpec(
      3, 8, 8,
      {ConvLayer(24, 3, 3, 1, 0, true, false), BatchNormLayer(), Activation("relu"),
       ConvLayer(20, 2, 3), Activation("tanh"), DenseLayer(2)}));
  ASSERT_NE(net, nullptr);
  const auto ts = net->tensors();
  ExpectUniform(Copy(Find(ts, 0, "weight")), std::sqrt(6.0 / (3 * 9)), "conv 0 (auto -> He)");
  ExpectUniform(Copy(Find(ts, 3, "weight")), std::sqrt(6.0 / (24 * 6 + 20 * 6)),
                "conv 3 (auto -> Glorot)");
  const std::vector<float> bias = Copy(Find(ts, 3, "bias"));
  EXPECT_TRUE(AllNear("conv 3 bias", std::vector<double>(20, 0.0), bias.data(), 0.0));
}

// Shapes that do not fit are refused naming the layer and the field at fault
// (argument Spec), with a message that completes "<field> ..." and names the
// sizes, and the offending value as the detail.
TEST(ConvNetwork, ShapesThatDoNotFitAreRefused) {
  struct Case {
    NetworkSpec spec;
    const char* where;
    const char* expect;
    Value detail;
  };
  const Case cases[] = {
      {ImageSpec(1, 4, 4, {ConvLayer(2, 5, 5), DenseLayer(2)}), "layers[0]",
       "kernelSize[0] must be at most 4, the height of its 4x4 input", Value::number(5)},
      {ImageSpec(1, 4, 4, {ConvLayer(2, 3, 3), PoolLayer("maxPool2d", 3, 3), DenseLayer(2)}),
       "layers[1]", "poolSize[0] must be at most 2, the height of its 2x2 input", Value::number(3)},
      {Spec(16, {ConvLayer(2, 3, 3), DenseLayer(2)}, Adam(0.01)), "layers[0]",
       "type needs an image input", Value::string("conv2d")},
      {ImageSpec(1, 4, 4, {LayerSpec::of("flatten"), PoolLayer("avgPool2d", 2, 2), DenseLayer(2)}),
       "layers[1]", "type needs an image input", Value::string("avgPool2d")},
      {ImageSpec(2, 6, 6, {ConvLayer(3, 3, 3).set("groups", 2), DenseLayer(2)}), "layers[0]",
       "groups must divide the input's 2 channels and the 3 filters", Value::number(2)},
  };
  for (const Case& c : cases) {
    std::unique_ptr<Network> net;
    ErrorInfo error;
    EXPECT_EQ(Network::create(c.spec, &net, &error), Status::InvalidConfig) << c.expect;
    EXPECT_EQ(error.argument, Argument::Spec) << c.expect;
    EXPECT_EQ(error.where, c.where) << error.message;
    ASSERT_TRUE(error.has_detail) << error.message;
    EXPECT_EQ(ValueBytes(error.detail), ValueBytes(c.detail)) << error.message;
    EXPECT_EQ(error.message.rfind(c.expect, 0), 0u) << "message: " << error.message;
  }
}

}  // namespace
