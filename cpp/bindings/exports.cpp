// The core's C exports: one-line mappings from the JS facade (web/src/core.js) to the core.
// Plain functions over a handle instead of Embind: no Embind runtime in the wasm, no
// generated invokers in the glue (the download), no RTTI or exceptions to build with.
// Pointers cross as integers (byte offsets into wasm memory) so the facade reads and writes
// typed-array views without copies; status codes cross as ints (the facade turns them into
// Error subclasses); 64-bit counts cross as doubles. Configs, schemas, shapes, tensor lists
// and errors cross as the bytes of a Value (bnwasm/value.h; web/src/value.js reads and
// writes them): bytes in are written at bn_arg(n), bytes out are left at bn_result().
#include <emscripten/em_macros.h>
#include <malloc.h>

#include <memory>
#include <vector>

#include "bnwasm/network.h"
#include "bnwasm/parallel.h"

using bnwasm::Network;
using bnwasm::Status;
using bnwasm::Value;

namespace {

std::vector<uint8_t> g_arg;     // bytes JS wrote for the next call (a config, a model)
std::vector<uint8_t> g_result;  // bytes the last call left for JS
bnwasm::ErrorInfo g_error;      // why the last create, load or describe failed

// Frees the bytes JS wrote once the call that reads them returns, so the allocations JS
// can see (bn_heap_allocated) are the networks' alone.
struct ArgUse {
  ~ArgUse() { std::vector<uint8_t>().swap(g_arg); }
};

// Leaves a Value's bytes at bn_result() until bn_release(); returns their count (never 0).
size_t result(const Value& v) {
  g_result.clear();
  v.write(&g_result);
  return g_result.size();
}

Value error_value(const bnwasm::ErrorInfo& e) {
  Value out = Value::object();
  out.set("status", Value::number(static_cast<int>(e.status)));
  out.set("argument", Value::number(static_cast<int>(e.argument)));
  out.set("index", Value::number(static_cast<double>(e.index)));
  out.set("value", Value::number(e.value));
  out.set("message", Value::string(e.message));
  out.set("where", Value::string(e.where));
  if (e.has_detail) out.set("detail", e.detail);
  return out;
}

// The core's Network plus the little state a JS caller needs between calls.
struct Handle {
  explicit Handle(std::unique_ptr<Network> n) : net(std::move(n)), views(net->tensors()) {}
  std::unique_ptr<Network> net;
  std::vector<bnwasm::TensorView> views;  // tensors never move: the arenas are sized once
  std::vector<uint8_t> saved;
  double train_loss = 0;
  double eval_loss_sum = 0;
  size_t eval_correct = 0;
};

Handle* handle_of(std::unique_ptr<Network> net) { return net ? new Handle(std::move(net)) : nullptr; }

// The config JS wrote at bn_arg(n), parsed and checked; false with g_error set otherwise.
bool parse(size_t n, bnwasm::NetworkSpec* spec) {
  Value config;
  size_t used = 0;
  if (n > g_arg.size() || !Value::read(g_arg.data(), n, &config, &used) || used != n) {
    g_error = bnwasm::ErrorInfo();
    g_error.status = Status::InvalidConfig;
    g_error.message = "the config's bytes are damaged";
    return false;
  }
  bnwasm::SpecFailure why;
  if (!bnwasm::parse_network(config, spec, &why)) {
    g_error = bnwasm::spec_error(Status::InvalidConfig, why);
    return false;
  }
  return true;
}

}  // namespace

#define BN extern "C" EMSCRIPTEN_KEEPALIVE

// ---- module: bytes in and out, create, load, describe ------------------------------------
BN uint8_t* bn_arg(size_t n) { g_arg.resize(n); return g_arg.data(); }
BN const uint8_t* bn_result() { return g_result.data(); }
BN void bn_release() { std::vector<uint8_t>().swap(g_result); }
// A network from the config at bn_arg(n); null with bn_last_error() otherwise.
BN Handle* bn_create(size_t n) {
  ArgUse use;
  bnwasm::NetworkSpec spec;
  std::unique_ptr<Network> net;
  if (!parse(n, &spec) || Network::create(spec, &net, &g_error) != Status::Ok) return nullptr;
  return handle_of(std::move(net));
}
// A network from the model bytes at bn_arg(n); null with bn_last_error() otherwise.
BN Handle* bn_load(size_t n) {
  ArgUse use;
  std::unique_ptr<Network> net;
  if (n > g_arg.size() || Network::load(g_arg.data(), n, &net, &g_error) != Status::Ok) return nullptr;
  return handle_of(std::move(net));
}
// What create would build, without building it: {config, layers}; 0 with bn_last_error().
BN size_t bn_describe(size_t n) {
  ArgUse use;
  bnwasm::NetworkSpec spec;
  if (!parse(n, &spec)) return 0;
  Value out = Value::object();
  out.set("config", bnwasm::network_value(spec));
  out.set("layers", bnwasm::layers_value(spec));
  return result(out);
}
BN size_t bn_schema() { return result(bnwasm::schema_value()); }
BN size_t bn_last_error() { return result(error_value(g_error)); }
// Bytes malloc has handed out and not taken back: flat across cycles means no leak.
BN double bn_heap_allocated() { return static_cast<double>(mallinfo().uordblks); }
BN size_t bn_set_thread_count(size_t n) { return bnwasm::set_thread_count(n); }
#if BNWASM_THREADS
// A pool thread's worker calls this when the thread died in a task (web/src/pthread.js).
BN void bn_pool_thread_failed() { bnwasm::set_parallel_failed(); }
// Test hook (tests/js/threads-check.mjs 'fault'): a job whose tasks on the pool's other
// threads trap, as a bug in a kernel would; the calling thread's tasks wait until one did.
BN void bn_test_pool_fault() {
  static std::atomic<bool> trapped{false};
  bnwasm::parallel_for(bnwasm::kMaxPieces, [](size_t, size_t worker) {
    if (worker != 0) {
      trapped.store(true);
      __builtin_trap();
    }
    while (!trapped.load() && bnwasm::thread_count() > 1) {
    }
  });
}
#endif
BN void bn_free(Handle* h) { delete h; }

// ---- one network --------------------------------------------------------------------------
BN float* bn_input(Handle* h, size_t rows) { return h->net->input(rows); }
BN int32_t* bn_labels(Handle* h, size_t rows) { return h->net->labels(rows); }
BN float* bn_targets(Handle* h, size_t rows) { return h->net->targets(rows); }
BN float* bn_output(Handle* h, size_t rows) { return h->net->output(rows); }
BN uint32_t* bn_indices(Handle* h, size_t n) { return h->net->indices(n); }
BN int bn_check(Handle* h, size_t rows) { return int(h->net->check_batch(rows)); }
BN int bn_train(Handle* h, size_t rows) { return int(h->net->train_step(rows, &h->train_loss)); }
// The mean loss over the mini-batch of the last successful bn_train.
BN double bn_train_loss(Handle* h) { return h->train_loss; }
BN int bn_check_training_batch(Handle* h, size_t rows) { return int(h->net->check_training_batch(rows)); }
BN size_t bn_min_training_batch(Handle* h) { return h->net->min_training_batch(); }
// How every batch norm trains (BatchNormMode): 0 each as configured, 1 batch, 2 frozen.
BN void bn_set_batch_norm(Handle* h, int mode) { h->net->set_batch_norm(mode); }
BN int bn_batch_norm(Handle* h) { return h->net->batch_norm(); }
BN int bn_predict_one(Handle* h) { return int(h->net->predict_one()); }
BN int bn_predict_batch(Handle* h, size_t rows) { return int(h->net->predict_batch(rows)); }
BN int bn_evaluate(Handle* h, size_t rows) {
  return int(h->net->evaluate(rows, &h->eval_loss_sum, &h->eval_correct));
}
// The loss summed over the rows of the last bn_evaluate, and how many it classified right.
BN double bn_eval_loss_sum(Handle* h) { return h->eval_loss_sum; }
BN double bn_eval_correct(Handle* h) { return double(h->eval_correct); }
BN void bn_shuffle(Handle* h, size_t n) { h->net->shuffle(n); }
// The generator's 64-bit state in two 32-bit halves (a JS number holds only 53 bits).
BN uint32_t bn_rng_state(Handle* h, int high) { return uint32_t(h->net->rng_state() >> (high ? 32 : 0)); }
BN void bn_set_rng_state(Handle* h, uint32_t high, uint32_t low) {
  h->net->set_rng_state(uint64_t(high) << 32 | low);
}
BN double bn_steps(Handle* h) { return double(h->net->steps()); }
BN size_t bn_input_size(Handle* h) { return h->net->input_size(); }
BN size_t bn_output_size(Handle* h) { return h->net->output_size(); }
BN void bn_weights_changed(Handle* h) { h->net->weights_changed(); }
// Every tensor: [{layer, name, data (a byte offset), size, shape}].
BN size_t bn_tensors(Handle* h) {
  Value list = Value::array();
  for (const auto& t : h->views) {
    Value shape = Value::array();
    for (int32_t d : t.shape) shape.push(Value::number(d));
    Value v = Value::object();
    v.set("layer", Value::number(t.layer));
    v.set("name", Value::string(t.name));
    v.set("data", Value::number(double(reinterpret_cast<uintptr_t>(t.data))));
    v.set("size", Value::number(double(t.size)));
    v.set("shape", std::move(shape));
    list.push(std::move(v));
  }
  return result(list);
}
BN int bn_forward_to(Handle* h, size_t rows, int layer) { return int(h->net->forward_to(rows, layer)); }
BN const float* bn_layer_output(Handle* h, int layer) { return h->net->layer_output(layer); }
BN size_t bn_layer_width(Handle* h, int layer) { return h->net->layer_width(layer); }
BN size_t bn_channels(Handle* h, int layer) { return h->net->channels(layer); }
BN int bn_population_check(Handle* h, size_t rows) { return int(h->net->population_check(rows)); }
BN int bn_population_begin(Handle* h, int layer) { return int(h->net->population_begin(layer)); }
BN int bn_population_add(Handle* h, size_t rows) { return int(h->net->population_add(rows)); }
BN int bn_population_end(Handle* h) { return int(h->net->population_end()); }
BN const float* bn_batch_mean(Handle* h, int layer) { return h->net->batch_mean(layer); }
BN const float* bn_batch_var(Handle* h, int layer) { return h->net->batch_var(layer); }
BN double bn_batches_tracked(Handle* h, int layer) { return double(h->net->batches_tracked(layer)); }
BN int bn_set_batches_tracked(Handle* h, int layer, double n) {
  return int(h->net->set_batches_tracked(layer, uint64_t(n)));
}
BN size_t bn_config(Handle* h) { return result(bnwasm::network_value(h->net->spec())); }
BN size_t bn_layers(Handle* h) { return result(bnwasm::layers_value(h->net->spec())); }
// save() bytes, kept in the handle until bn_release_saved: bn_save gives the count.
BN size_t bn_save(Handle* h) { h->saved = h->net->save(); return h->saved.size(); }
BN const uint8_t* bn_saved(Handle* h) { return h->saved.data(); }
BN void bn_release_saved(Handle* h) { std::vector<uint8_t>().swap(h->saved); }
// The last failing call's ErrorInfo: {status, argument, index, value, message, where, detail}.
BN size_t bn_error(Handle* h) { return result(error_value(h->net->last_error())); }
BN Handle* bn_folded(Handle* h) { return handle_of(h->net->folded()); }
