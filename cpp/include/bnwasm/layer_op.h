// The object that runs one layer inside a Network: made by its type's
// LayerDef::make, it owns what is particular to the layer (its geometry,
// packed weights, argmax indices) and runs its forward and backward passes over
// buffers the network hands it. The network loops over these objects; it never
// asks which type a layer is.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "bnwasm/spec.h"

namespace bnwasm {

// The buffers of one pass over B rows. in[k] is input k (B, its width); out
// is (B, the layer's width). Backward reads dout and ADDS into din[k] (null
// when nobody needs that input's gradient) and into the layer's gradients.
struct Pass {
  size_t B = 0;
  bool train = false;
  const float* const* in = nullptr;
  float* out = nullptr;
  const float* dout = nullptr;
  float* const* din = nullptr;
  float* scratch = nullptr;  // LayerOp::scratch_size(B) floats, shared by every layer
  uint64_t version = 0;      // changes whenever any parameter changes
  uint64_t step = 0;         // optimizer steps taken: with the seed, what dropout draws from
  uint32_t seed = 0;
  // How batch norm trains, for every layer at once: kConfigured (each as its
  // config says), or kBatchStatistics / kFrozen for all (fit's batchNorm option).
  int batch_norm = 0;
};
// Pass::batch_norm values, and a batch-norm layer's `mode` option.
enum BatchNormMode : int { kConfigured = 0, kBatchStatistics = 1, kFrozen = 2 };

// The running statistics of a batch-norm layer, for the network's loops that
// are about them: the running-average update, population statistics, folding,
// progress reports.
class Statistics {
 public:
  virtual ~Statistics() = default;
  virtual size_t channels() const = 0;
  virtual size_t positions() const = 0;      // values per channel in one example
  virtual bool unbiased() const = 0;         // running variance from the m/(m-1) batch variance
  virtual const float* batch_mean() const = 0;  // of the last training batch, (channels)
  virtual const float* batch_var() const = 0;   // biased
  // Whether training normalizes with the running statistics and leaves them
  // as they are (mode 'frozen'), given Pass::batch_norm.
  virtual bool frozen(int batch_norm) const = 0;
  // The running-average update from the last training batch of B rows: first
  // a check that it stays finite (nothing written), then the update.
  virtual bool update_ok(size_t B) const = 0;
  virtual void update(size_t B) = 0;
  // After the running statistics were written from outside (setWeights, loading).
  virtual void changed() = 0;
  // The mean and variance of a population: the new running statistics.
  virtual void set(const double* mean, const double* var) = 0;
  // Inference as one affine map per channel (scale, shift), float32 as the
  // forward pass computes it; and its double-precision terms for folding:
  // gamma / sqrt(var + eps), the running mean and beta.
  virtual void infer_scale_shift(float* scale, float* shift) const = 0;
  virtual void fold_terms(size_t c, double* scale, double* mean, double* beta) const = 0;
  uint64_t tracked = 0;  // batches folded into the running statistics (num_batches_tracked)
};

// What a layer learns about its surroundings when its parameters are drawn.
struct InitInfo {
  const LayerDef* activation = nullptr;  // the layer it feeds, looking past batch norm
};

class LayerOp {
 public:
  virtual ~LayerOp() = default;
  const LayerDef* def = nullptr;
  size_t index = 0;  // its place in the network's layers
  // The layer's tensors in the order of def->tensors (those it has): values
  // in the parameter or statistics arena, gradients (null for statistics).
  std::vector<float*> t, dt;
  // Its share of the network's cache arena (cache_size() floats): what
  // forward in training keeps for backward and the statistics update.
  float* cache = nullptr;
  virtual size_t cache_size() const { return 0; }

  // Draws the parameters and sets the statistics of a new network.
  virtual void init(const InitInfo& /*info*/, uint64_t* /*rng*/) {}
  // Room for passes of up to `rows` rows (argmax indices and the like).
  virtual void reserve(size_t /*rows*/) {}
  // Floats of the shared scratch a pass of `rows` rows needs.
  virtual size_t scratch_size(size_t /*rows*/) const { return 0; }

  virtual void forward(const Pass& p) = 0;
  virtual void backward(const Pass& /*p*/) {}
  // Whether the layer learns: it has parameters and is not frozen (trainable
  // false). Backward runs for it even when no input needs a gradient.
  bool learns = false;

  virtual Statistics* statistics() { return nullptr; }
  const Statistics* statistics() const { return const_cast<LayerOp*>(this)->statistics(); }

  // Inference may run this layer together with the ones after it in one
  // pass. `next` are the layers that follow in a chain (each the only
  // consumer of the one before, which it alone feeds); returns how many of
  // them this layer takes over (0: none). Then forward_fused computes them
  // all and writes the last one's output into p.out.
  virtual size_t fusion(const LayerOp* const* /*next*/, size_t /*n*/) const { return 0; }
  virtual void forward_fused(const Pass& /*p*/, const LayerOp* const* /*next*/,
                             size_t /*count*/) {}
};

// Random numbers for parameter initialisation: splitmix64, one word of state,
// so a saved model resumes its stream.
uint64_t next_u64(uint64_t* state);
double next_uniform(uint64_t* state);  // [0, 1) with 53 random bits

}  // namespace bnwasm
