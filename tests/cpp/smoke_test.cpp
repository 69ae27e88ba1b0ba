#include <gtest/gtest.h>

#include <cmath>

#include "bnwasm/network.h"

TEST(Smoke, CreatesAndTrains) {
  bnwasm::NetworkSpec spec;
  spec.input_size = 3;
  bnwasm::LayerSpec d;
  d.type = bnwasm::LayerType::Dense;
  d.units = 4;
  d.use_bias = false;
  bnwasm::LayerSpec bn;
  bn.type = bnwasm::LayerType::BatchNorm;
  bnwasm::LayerSpec r;
  r.type = bnwasm::LayerType::Relu;
  bnwasm::LayerSpec o;
  o.type = bnwasm::LayerType::Dense;
  o.units = 2;
  spec.layers = {d, bn, r, o};
  std::unique_ptr<bnwasm::Network> net;
  std::string why;
  ASSERT_EQ(bnwasm::Network::create(spec, &net, &why), bnwasm::Status::Ok) << why;
  float* x = net->input(4);
  for (int i = 0; i < 12; ++i) x[i] = static_cast<float>(i % 5) - 2.0f;
  int32_t* y = net->labels(4);
  for (int i = 0; i < 4; ++i) y[i] = i % 2;
  double loss = 0;
  ASSERT_EQ(net->train_step(4, &loss), bnwasm::Status::Ok) << net->last_error().message;
  EXPECT_TRUE(std::isfinite(loss));
}
