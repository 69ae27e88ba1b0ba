// Where a torchvision model's training time goes: each of its convolutions
// timed on its own in wasm, one thread, at the batch the benchmark trains
// with, through the functions the network's conv2d layer calls (forward,
// then backward with the input gradient unless the layer reads the network's
// input). The shapes come from the core (describeNetwork) through argv:
//   node build/bench/conv_layers.cjs B "C,H,W,F,KH,KW,SH,SW,PT,PL,OH,OW,groups;..."
// Prints JSON: {"layers": [[forward ms, backward ms], ...]} in argv's order.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "probe.h"
#include "bnwasm/depthwise.h"
#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "bnwasm/parallel.h"

using namespace bnwasm;

namespace {

using probe::filled;

// Median milliseconds of 3 calls after one warm-up: a layer at batch 32 takes
// milliseconds, long enough to time alone.
double median_ms(const std::function<void()>& fn) { return 1e3 * probe::median_seconds(fn, 3, false); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 1;
  const size_t B = std::strtoul(argv[1], nullptr, 10);
  std::string spec = argv[2];
  std::printf("{\"layers\":[");
  bool first_layer = true;
  size_t at = 0;
  while (at < spec.size()) {
    size_t end = spec.find(';', at);
    if (end == std::string::npos) end = spec.size();
    size_t v[13];
    const char* p = spec.c_str() + at;
    for (size_t& x : v) {
      x = std::strtoul(p, const_cast<char**>(&p), 10);
      if (*p == ',') ++p;
    }
    at = end + 1;
    const size_t groups = v[12];
    const Conv2dGeometry g{v[0] / groups, v[1], v[2], v[3] / groups, v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]};
    const size_t in_size = B * v[0] * g.H * g.W, out_size = B * v[3] * g.P();
    std::vector<float> in = filled(in_size, 1), dout = filled(out_size, 2), out(out_size), din(in_size);
    std::vector<float> weight = filled(v[3] * g.K(), 3), dweight(weight.size()), bias(v[3]), dbias(v[3]);
    double fwd, bwd;
    if (groups > 1 && g.C == 1) {
      const DepthwiseConv dw{groups, g.H, g.W, g.F, g.KH, g.KW, g.SH, g.SW, g.PT, g.PL, g.OH, g.OW};
      std::vector<float> scratch(dw.scratch_size());
      DepthwiseEpilogue ep;
      fwd = median_ms([&] { depthwise_conv2d_forward(out.data(), scratch.data(), in.data(), weight.data(), ep, B, dw); });
      bwd = median_ms([&] {
        depthwise_conv2d_backward(din.data(), dweight.data(), nullptr, scratch.data(), dout.data(), in.data(), weight.data(), B, dw);
      });
    } else {
      const bool first = first_layer;  // the network's input needs no gradient
      const bool rows = groups == 1 && conv2d_rows_applies(g);
      const std::vector<uint32_t> taps = rows ? conv2d_live_taps(g) : std::vector<uint32_t>();
      std::vector<float> scratch(std::max(conv2d_scratch_size(g), rows ? conv2d_rows_scratch_size(g, taps.size()) : 0));
      std::vector<float> packed(rows ? f32_packed_size(g.C * taps.size(), g.F) : 0);
      // The forward the conv2d layer runs in training; the rows path packs its weight once per step.
      fwd = median_ms([&] {
        if (!rows) return conv2d_forward(out.data(), scratch.data(), in.data(), weight.data(), nullptr, B, g);
        conv2d_rows_weights(packed.data(), weight.data(), taps, g);
        conv2d_rows_forward(out.data(), scratch.data(), in.data(), packed.data(), taps, ConvEpilogue(), B, g);
      });
      bwd = median_ms([&] {
        conv2d_backward(first ? nullptr : din.data(), dweight.data(), nullptr, scratch.data(), dout.data(), in.data(),
                        weight.data(), B, g);
      });
    }
    std::printf("%s[%.3f,%.3f]", first_layer ? "" : ",", fwd, bwd);
    first_layer = false;
  }
  std::printf("]}\n");
  return 0;
}
