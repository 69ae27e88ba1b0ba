// What the registry entries (one file per layer family in this folder) share:
// builders for their option tables, the checks several shape functions make,
// and the few facts one entry asks of another (the conv's fused inference asks
// whether a ReLU or a 2x2 max pool follows).
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/layer_op.h"
#include "bnwasm/layers.h"
#include "bnwasm/spec.h"

namespace bnwasm {
namespace ops {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMaxUnits = 1 << 24;
constexpr double kMaxWindow = 1 << 16;

// Fills in the option offsets and width of a registry entry.
LayerDef finish(LayerDef d);


// The options every layer with a weight has (dense, conv2d), and their init.
std::vector<OptionDef> weight_options();
// `trainable`, which every layer with parameters has.
OptionDef trainable_option();
// Draws n weights of a layer with these fans by its init option (He uniform,
// Glorot uniform or N(0, initStd^2); auto: He when ReLU follows).
void init_weights(float* w, size_t n, size_t fan_in, size_t fan_out, const LayerSpec& l,
                  const InitInfo& info, uint64_t* rng);

// "HxW".
std::string dims(int64_t h, int64_t w);
// A layer that needs an image: false and why when its input is flat.
bool needs_image(const LayerSpec& l, const Shape& in, SpecError* why);

// Facts the conv's fused inference needs about the layers after it.
bool is_relu(const LayerOp* op);
bool is_max_pool_2x2_stride_2(const LayerOp* op);
// A clip layer (relu6 or clip): true, and its bounds when lo and hi are not null.
bool is_clip(const LayerOp* op, float* lo, float* hi);

// The registry entries, by family: each file of this folder lists its own
// (a new layer type is one entry in its family's file).
std::vector<const LayerDef*> dense_defs();        // dense
std::vector<const LayerDef*> batch_norm_defs();   // batchNorm
std::vector<const LayerDef*> elementwise_defs();  // relu, sigmoid, tanh, flatten
std::vector<const LayerDef*> conv_defs();         // conv2d
std::vector<const LayerDef*> pooling_defs();      // maxPool2d, avgPool2d, globalAvgPool
std::vector<const LayerDef*> merge_defs();        // add, concat
const LayerDef& relu_def();
const LayerDef& max_pool2d_def();

}  // namespace ops
}  // namespace bnwasm
