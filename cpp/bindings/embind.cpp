// Embind bindings: one-line mappings from the JS facade (web/src/) to the core.
// Pointers cross as integers (byte offsets into wasm memory) so the facade can
// read and write typed-array views without copies. Status codes cross as ints;
// the facade turns them into Error subclasses.
#include <emscripten/bind.h>
#include <emscripten/val.h>
#include <malloc.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/network.h"

using namespace emscripten;
using bnwasm::Network;
using bnwasm::Status;

namespace {

// A failing call's ErrorInfo as a plain object; the facade maps status to an Error class.
val error_object(const bnwasm::ErrorInfo& e) {
  val out = val::object();
  out.set("status", static_cast<int>(e.status));
  out.set("argument", static_cast<int>(e.argument));
  out.set("index", static_cast<double>(e.index));
  out.set("value", e.value);
  out.set("message", e.message);
  return out;
}

// The core's Network plus the little state a JS caller needs between calls.
class Handle {
 public:
  explicit Handle(std::unique_ptr<Network> net) : net_(std::move(net)), views_(net_->tensors()) {}

  uintptr_t input(size_t rows) { return reinterpret_cast<uintptr_t>(net_->input(rows)); }
  uintptr_t labels(size_t rows) { return reinterpret_cast<uintptr_t>(net_->labels(rows)); }
  uintptr_t targets(size_t rows) { return reinterpret_cast<uintptr_t>(net_->targets(rows)); }
  uintptr_t output(size_t rows) { return reinterpret_cast<uintptr_t>(net_->output(rows)); }
  uintptr_t indices(size_t n) { return reinterpret_cast<uintptr_t>(net_->indices(n)); }
  int check(size_t rows) { return static_cast<int>(net_->check_batch(rows)); }
  int train(size_t rows) { return static_cast<int>(net_->train_step(rows, &train_loss_)); }
  // The mean loss over the mini-batch of the last successful train().
  double trainLoss() const { return train_loss_; }
  int predictOne() { return static_cast<int>(net_->predict_one()); }
  int predictBatch(size_t rows) { return static_cast<int>(net_->predict_batch(rows)); }
  int evaluate(size_t rows) {
    return static_cast<int>(net_->evaluate(rows, &eval_loss_sum_, &eval_correct_));
  }
  // The loss summed over the rows of the last evaluate(), and how many it classified right.
  double evalLossSum() const { return eval_loss_sum_; }
  double evalCorrect() const { return static_cast<double>(eval_correct_); }
  void shuffle(size_t n) { net_->shuffle(n); }
  // 64-bit state as 16 hex digits (a JS number holds only 53 bits).
  std::string rngState() const {
    static const char kHex[] = "0123456789abcdef";
    std::string hex(16, '0');
    uint64_t v = net_->rng_state();
    for (int i = 15; i >= 0; --i, v >>= 4) hex[i] = kHex[v & 15];
    return hex;
  }
  void setRngState(const std::string& hex) {
    net_->set_rng_state(std::strtoull(hex.c_str(), nullptr, 16));
  }
  double steps() const { return static_cast<double>(net_->steps()); }
  size_t inputSize() const { return net_->input_size(); }
  size_t outputSize() const { return net_->output_size(); }
  void weightsChanged() { net_->weights_changed(); }

  size_t tensorCount() const { return views_.size(); }
  int tensorLayer(size_t i) const { return views_.at(i).layer; }
  std::string tensorName(size_t i) const { return views_.at(i).name; }
  uintptr_t tensorData(size_t i) const { return reinterpret_cast<uintptr_t>(views_.at(i).data); }
  size_t tensorSize(size_t i) const { return views_.at(i).size; }
  val tensorShape(size_t i) const { return val::array(views_.at(i).shape); }
  int forwardTo(size_t rows, int layer) { return static_cast<int>(net_->forward_to(rows, layer)); }
  uintptr_t layerOutput(int layer) const {
    return reinterpret_cast<uintptr_t>(net_->layer_output(layer));
  }
  size_t layerWidth(int layer) const { return net_->layer_width(layer); }
  int populationBegin(int layer) { return static_cast<int>(net_->population_begin(layer)); }
  int populationAdd(size_t rows) { return static_cast<int>(net_->population_add(rows)); }
  int populationEnd() { return static_cast<int>(net_->population_end()); }
  uintptr_t batchMean(int layer) const {
    return reinterpret_cast<uintptr_t>(net_->batch_mean(layer));
  }
  uintptr_t batchVar(int layer) const {
    return reinterpret_cast<uintptr_t>(net_->batch_var(layer));
  }

  val spec() const { return val::array(bnwasm::encode_spec(net_->spec())); }
  size_t save() {
    saved_ = net_->save();
    return saved_.size();
  }
  uintptr_t saved() const { return reinterpret_cast<uintptr_t>(saved_.data()); }
  void releaseSaved() { std::vector<uint8_t>().swap(saved_); }

  val error() const { return error_object(net_->last_error()); }
  Handle* folded() const { return new Handle(net_->folded()); }

 private:
  std::unique_ptr<Network> net_;
  std::vector<bnwasm::TensorView> views_;  // tensors never move: the arenas are sized once
  std::vector<uint8_t> saved_;
  double train_loss_ = 0;
  double eval_loss_sum_ = 0;
  size_t eval_correct_ = 0;
};

bnwasm::ErrorInfo g_error;  // why the last create or load failed

Handle* create(val spec_array) {
  const std::vector<double> v = convertJSArrayToNumberVector<double>(spec_array);
  bnwasm::NetworkSpec spec;
  std::unique_ptr<Network> net;
  if (bnwasm::decode_spec(v.data(), v.size(), &spec, &g_error) != Status::Ok) return nullptr;
  if (Network::create(spec, &net, &g_error) != Status::Ok) return nullptr;
  return new Handle(std::move(net));
}
// Embind copies a Uint8Array argument into the string in one memcpy.
Handle* load(const std::string& bytes) {
  std::unique_ptr<Network> net;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (Network::load(data, bytes.size(), &net, &g_error) != Status::Ok) return nullptr;
  return new Handle(std::move(net));
}
val lastError() { return error_object(g_error); }
std::string kernelIsa() { return bnwasm::kernel_isa(); }
// Bytes malloc has handed out and not taken back: flat across cycles means no leak.
double heapAllocated() { return static_cast<double>(mallinfo().uordblks); }

}  // namespace

EMSCRIPTEN_BINDINGS(bnwasm) {
  class_<Handle>("Network")
      .function("input", &Handle::input)
      .function("labels", &Handle::labels)
      .function("targets", &Handle::targets)
      .function("output", &Handle::output)
      .function("indices", &Handle::indices)
      .function("check", &Handle::check)
      .function("train", &Handle::train)
      .function("trainLoss", &Handle::trainLoss)
      .function("predictOne", &Handle::predictOne)
      .function("predictBatch", &Handle::predictBatch)
      .function("evaluate", &Handle::evaluate)
      .function("evalLossSum", &Handle::evalLossSum)
      .function("evalCorrect", &Handle::evalCorrect)
      .function("shuffle", &Handle::shuffle)
      .function("steps", &Handle::steps)
      .function("rngState", &Handle::rngState)
      .function("setRngState", &Handle::setRngState)
      .function("inputSize", &Handle::inputSize)
      .function("outputSize", &Handle::outputSize)
      .function("weightsChanged", &Handle::weightsChanged)
      .function("tensorCount", &Handle::tensorCount)
      .function("tensorLayer", &Handle::tensorLayer)
      .function("tensorName", &Handle::tensorName)
      .function("tensorData", &Handle::tensorData)
      .function("tensorSize", &Handle::tensorSize)
      .function("tensorShape", &Handle::tensorShape)
      .function("forwardTo", &Handle::forwardTo)
      .function("layerOutput", &Handle::layerOutput)
      .function("layerWidth", &Handle::layerWidth)
      .function("populationBegin", &Handle::populationBegin)
      .function("populationAdd", &Handle::populationAdd)
      .function("populationEnd", &Handle::populationEnd)
      .function("batchMean", &Handle::batchMean)
      .function("batchVar", &Handle::batchVar)
      .function("spec", &Handle::spec)
      .function("save", &Handle::save)
      .function("saved", &Handle::saved)
      .function("releaseSaved", &Handle::releaseSaved)
      .function("error", &Handle::error)
      .function("folded", &Handle::folded, allow_raw_pointers());
  function("create", &create, allow_raw_pointers());
  function("load", &load, allow_raw_pointers());
  function("lastError", &lastError);
  function("kernelIsa", &kernelIsa);
  function("heapAllocated", &heapAllocated);
}
