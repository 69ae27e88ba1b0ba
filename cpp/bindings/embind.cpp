// Embind bindings: one-line mappings from the JS facade (web/src/) to the core.
// Pointers cross as integers (byte offsets into wasm memory) so the facade can
// read and write typed-array views without copies. Status codes cross as ints;
// the facade turns them into Error subclasses. Configs, schemas and shapes
// cross as the bytes of a Value (bnwasm/value.h; web/src/value.js reads and
// writes them): a Uint8Array in, a Uint8Array (a copy) out.
#include <emscripten/bind.h>
#include <emscripten/val.h>
#include <malloc.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/network.h"
#include "bnwasm/parallel.h"

using namespace emscripten;
using bnwasm::Network;
using bnwasm::Status;

namespace {

// A Value's bytes as a new Uint8Array.
val bytes_of(const bnwasm::Value& v) {
  std::vector<uint8_t> out;
  v.write(&out);
  return val::global("Uint8Array").new_(typed_memory_view(out.size(), out.data()));
}

// A Value from the bytes JS wrote (a Uint8Array, copied into the string by Embind).
bool value_of(const std::string& bytes, bnwasm::Value* v) {
  size_t used = 0;
  return bnwasm::Value::read(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), v, &used) &&
         used == bytes.size();
}

// A failing call's ErrorInfo as a plain object; the facade maps status to an Error class.
val error_object(const bnwasm::ErrorInfo& e) {
  val out = val::object();
  out.set("status", static_cast<int>(e.status));
  out.set("argument", static_cast<int>(e.argument));
  out.set("index", static_cast<double>(e.index));
  out.set("value", e.value);
  out.set("message", e.message);
  out.set("where", e.where);
  if (e.has_detail) out.set("detail", bytes_of(e.detail));
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
  int checkTrainingBatch(size_t rows) { return static_cast<int>(net_->check_training_batch(rows)); }
  size_t minTrainingBatch() const { return net_->min_training_batch(); }
  // How every batch norm trains (BatchNormMode): 0 each as configured, 1 batch, 2 frozen.
  void setBatchNorm(int mode) { net_->set_batch_norm(mode); }
  int batchNorm() const { return net_->batch_norm(); }
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
  size_t channels(int layer) const { return net_->channels(layer); }
  int populationCheck(size_t rows) { return static_cast<int>(net_->population_check(rows)); }
  int populationBegin(int layer) { return static_cast<int>(net_->population_begin(layer)); }
  int populationAdd(size_t rows) { return static_cast<int>(net_->population_add(rows)); }
  int populationEnd() { return static_cast<int>(net_->population_end()); }
  uintptr_t batchMean(int layer) const {
    return reinterpret_cast<uintptr_t>(net_->batch_mean(layer));
  }
  uintptr_t batchVar(int layer) const {
    return reinterpret_cast<uintptr_t>(net_->batch_var(layer));
  }

  double batchesTracked(int layer) const {
    return static_cast<double>(net_->batches_tracked(layer));
  }
  int setBatchesTracked(int layer, double n) {
    return static_cast<int>(net_->set_batches_tracked(layer, static_cast<uint64_t>(n)));
  }

  val config() const { return bytes_of(bnwasm::network_value(net_->spec())); }
  val layers() const { return bytes_of(bnwasm::layers_value(net_->spec())); }
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

// A config JS wrote as Value bytes, parsed and checked; false with g_error set otherwise.
bool parse(const std::string& bytes, bnwasm::NetworkSpec* spec) {
  bnwasm::Value config;
  bnwasm::SpecFailure why;
  if (!value_of(bytes, &config)) {
    g_error = bnwasm::ErrorInfo();
    g_error.status = Status::InvalidConfig;
    g_error.message = "the config's bytes are damaged";
    return false;
  }
  if (!bnwasm::parse_network(config, spec, &why)) {
    g_error = bnwasm::spec_error(Status::InvalidConfig, why);
    return false;
  }
  return true;
}
Handle* create(const std::string& config) {
  bnwasm::NetworkSpec spec;
  std::unique_ptr<Network> net;
  if (!parse(config, &spec) || Network::create(spec, &net, &g_error) != Status::Ok) return nullptr;
  return new Handle(std::move(net));
}
// What create would build, without building it: the normalized config and the layers'
// shapes and tensors ({config, layers}), or null with lastError().
val describe(const std::string& config) {
  bnwasm::NetworkSpec spec;
  if (!parse(config, &spec)) return val::null();
  bnwasm::Value out = bnwasm::Value::object();
  out.set("config", bnwasm::network_value(spec));
  out.set("layers", bnwasm::layers_value(spec));
  return bytes_of(out);
}
val schema() { return bytes_of(bnwasm::schema_value()); }
// Embind copies a Uint8Array argument into the string in one memcpy.
Handle* load(const std::string& bytes) {
  std::unique_ptr<Network> net;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (Network::load(data, bytes.size(), &net, &g_error) != Status::Ok) return nullptr;
  return new Handle(std::move(net));
}
val lastError() { return error_object(g_error); }
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
      .function("checkTrainingBatch", &Handle::checkTrainingBatch)
      .function("minTrainingBatch", &Handle::minTrainingBatch)
      .function("setBatchNorm", &Handle::setBatchNorm)
      .function("batchNorm", &Handle::batchNorm)
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
      .function("channels", &Handle::channels)
      .function("populationCheck", &Handle::populationCheck)
      .function("populationBegin", &Handle::populationBegin)
      .function("populationAdd", &Handle::populationAdd)
      .function("populationEnd", &Handle::populationEnd)
      .function("batchMean", &Handle::batchMean)
      .function("batchVar", &Handle::batchVar)
      .function("batchesTracked", &Handle::batchesTracked)
      .function("setBatchesTracked", &Handle::setBatchesTracked)
      .function("config", &Handle::config)
      .function("layers", &Handle::layers)
      .function("save", &Handle::save)
      .function("saved", &Handle::saved)
      .function("releaseSaved", &Handle::releaseSaved)
      .function("error", &Handle::error)
      .function("folded", &Handle::folded, allow_raw_pointers());
  function("create", &create, allow_raw_pointers());
  function("load", &load, allow_raw_pointers());
  function("lastError", &lastError);
  function("describe", &describe);
  function("schema", &schema);
  function("setThreadCount", &bnwasm::set_thread_count);
  function("heapAllocated", &heapAllocated);
}
