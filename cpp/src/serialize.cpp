// Model file format, version 3 (all integers and floats little-endian):
//   "BNWM" | u32 version | u32 payload length L | payload (L bytes) | u32 CRC-32
// The CRC-32 (IEEE 802.3, as zlib) covers everything before it. Payload:
//   u32 n, n bytes: the network's config as a Value (value.h), every layer
//   stored as its type plus the options it has (network_value) |
//   u64 optimizer steps | u64 rng state |
//   u32 layer count, u64[count] batches each layer folded into its statistics |
//   five arrays, each u32 n then f32[n]: parameters, first moments (SGD
//   velocity or Adam m), second moments (Adam v), running statistics, and the
//   parameters of layers that are not trainable, each in the order of the
//   layers and of their entries' tensors.
// Versions 1 and 2 (bnwasm 0.1) differ in the spec, u32 n, f64[n], a flat
// vector with a fixed record per layer (legacy_spec.cpp reads it), and have no
// fifth array (every layer was trainable).
#include <cmath>
#include <cstring>
#include <string>

#include "bnwasm/network.h"

namespace bnwasm {

uint32_t crc32(const uint8_t* data, size_t n) {
  static uint32_t table[256];
  static bool ready = false;
  if (!ready) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {

constexpr uint32_t kFormatVersion = 3;
constexpr char kMagic[4] = {'B', 'N', 'W', 'M'};

class Writer {
 public:
  template <typename T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // wasm32 and x86-64 are little-endian
    out.insert(out.end(), b, b + sizeof(T));
  }
  void floats(const std::vector<float>& v) {
    put<uint32_t>(static_cast<uint32_t>(v.size()));
    if (v.empty()) return;  // data() may be null
    const uint8_t* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(float));
  }
  std::vector<uint8_t> out;
};

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <typename T>
  bool get(T* v) {
    if (n_ - pos_ < sizeof(T)) return false;
    std::memcpy(v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  // Reads a float array whose length must be exactly `expected`.
  bool floats(std::vector<float>* v, size_t expected) {
    uint32_t n = 0;
    if (!get(&n) || n != expected || (n_ - pos_) / sizeof(float) < n) return false;
    v->resize(n);
    if (n != 0)
      std::memcpy(v->data(), p_ + pos_, n * sizeof(float));  // data() may be null when empty
    pos_ += n * sizeof(float);
    return true;
  }
  // The next n bytes, in place.
  bool take(size_t n, const uint8_t** p) {
    if (n_ - pos_ < n) return false;
    *p = p_ + pos_;
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == n_; }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace

struct Serializer {
  static std::vector<uint8_t> save(const Network& net) {
    Writer w;
    std::vector<uint8_t> spec;
    network_value(net.spec_).write(&spec);
    w.put<uint32_t>(static_cast<uint32_t>(spec.size()));
    w.out.insert(w.out.end(), spec.begin(), spec.end());
    w.put<uint64_t>(net.step_);
    w.put<uint64_t>(net.rng_state_);
    w.put<uint32_t>(static_cast<uint32_t>(net.layers_.size()));
    for (const auto& l : net.layers_) {
      const Statistics* s = l.op->statistics();
      w.put<uint64_t>(s != nullptr ? s->tracked : 0);
    }
    w.floats(net.params_);
    w.floats(net.moment1_);
    w.floats(net.moment2_);
    w.floats(net.stats_);
    w.floats(net.frozen_);

    Writer file;
    for (char c : kMagic) file.put<char>(c);
    file.put<uint32_t>(kFormatVersion);
    file.put<uint32_t>(static_cast<uint32_t>(w.out.size()));
    file.out.insert(file.out.end(), w.out.begin(), w.out.end());
    file.put<uint32_t>(crc32(file.out.data(), file.out.size()));
    return file.out;
  }

  static Status load(const uint8_t* bytes, size_t n, std::unique_ptr<Network>* out,
                     ErrorInfo* error) {
    auto corrupt = [error](std::string message) {
      *error = ErrorInfo();
      error->status = Status::CorruptModel;
      error->message = std::move(message);
      return Status::CorruptModel;
    };
    if (n < 16 || std::memcmp(bytes, kMagic, 4) != 0)
      return corrupt("not a bnwasm model (the bytes do not start with \"BNWM\")");
    uint32_t version = 0, length = 0, stored_crc = 0;
    std::memcpy(&version, bytes + 4, 4);
    std::memcpy(&length, bytes + 8, 4);
    if (version < 1 || version > kFormatVersion)
      return corrupt("model format version " + std::to_string(version) +
                     " is not supported (this build reads versions 1 to " +
                     std::to_string(kFormatVersion) + ")");
    if (static_cast<uint64_t>(length) + 16 != n)
      return corrupt("the model is " + std::to_string(n) + " bytes but its header says " +
                     std::to_string(static_cast<uint64_t>(length) + 16) + " (truncated or padded)");
    std::memcpy(&stored_crc, bytes + 12 + length, 4);
    if (crc32(bytes, 12 + length) != stored_crc)
      return corrupt("checksum mismatch: the model bytes are damaged");

    Reader r(bytes + 12, length);
    uint32_t spec_n = 0;
    if (!r.get(&spec_n) || spec_n > (1u << 24)) return corrupt("bad spec length");
    NetworkSpec spec;
    SpecFailure why;
    if (version >= 3) {
      const uint8_t* p = nullptr;
      Value config;
      size_t used = 0;
      if (!r.take(spec_n, &p) || !Value::read(p, spec_n, &config, &used) || used != spec_n)
        return corrupt("the stored configuration is cut short or damaged");
      if (!parse_network(config, &spec, &why)) {
        // Keeps where, what and why parse_network found (argument Spec).
        *error = spec_error(Status::CorruptModel, why);
        return Status::CorruptModel;
      }
    } else {
#ifdef BNWASM_DENSE_ONLY
      // The web facade gives files of formats 1 and 2 to the full build (web/src/module.js).
      return corrupt("model format version " + std::to_string(version) + " is read by the full build of bnwasm");
#endif
      if (spec_n > (1u << 20)) return corrupt("bad spec length");
      std::vector<double> spec_v(spec_n);
      for (double& d : spec_v)
        if (!r.get(&d)) return corrupt("spec cut short");
      if (!decode_legacy_spec(spec_v.data(), spec_v.size(), version, &spec, &why)) {
        *error = spec_error(Status::CorruptModel, why);
        return Status::CorruptModel;
      }
    }
    // Refuse before allocating: the tensors the spec implies must fit in the bytes left.
    uint64_t floats = 0;
    const std::vector<Shape> shapes = layer_shapes(spec);
    for (size_t i = 0; i < spec.layers.size(); ++i) {
      const LayerSpec& l = spec.layers[i];
      const std::vector<Shape> in = input_shapes(spec, shapes, i);
      for (size_t k = 0; k < l.def->tensors.size(); ++k) {
        if (l.def->tensors[k].when != nullptr && l.get(l.def->tensors[k].when) == 0) continue;
        uint64_t n = 1;
        for (int64_t d : l.def->tensor_shape(k, l, in.data(), shapes[i])) n *= static_cast<uint64_t>(d);
        floats += n;
      }
    }
    if (floats * sizeof(float) > length)
      return corrupt("the configuration needs more tensor bytes than the model holds");
    std::unique_ptr<Network> net(new Network(spec));
    uint32_t nlayers = 0;
    if (!r.get(&net->step_) || !r.get(&net->rng_state_) || !r.get(&nlayers) ||
        nlayers != net->layers_.size())
      return corrupt("counters do not match the configuration");
    for (auto& l : net->layers_) {
      uint64_t tracked = 0;
      if (!r.get(&tracked)) return corrupt("counters cut short");
      if (Statistics* s = l.op->statistics()) s->tracked = tracked;
    }
    const size_t np = net->params_.size();
    if (!r.floats(&net->params_, np) || !r.floats(&net->moment1_, net->moment1_.size()) ||
        !r.floats(&net->moment2_, net->moment2_.size()) ||
        !r.floats(&net->stats_, net->stats_.size()) ||
        (version >= 3 && !r.floats(&net->frozen_, net->frozen_.size())) || !r.done())
      return corrupt("tensor sizes do not match the configuration");
    for (const std::vector<float>* a : {&net->params_, &net->frozen_})
      for (float v : *a)
        if (!std::isfinite(v)) return corrupt("a parameter is not finite");
    for (float v : net->stats_)
      if (!std::isfinite(v)) return corrupt("a running statistic is not finite");
    ++net->version_;  // derived caches (packed weights) are stale
    *out = std::move(net);
    return Status::Ok;
  }
};

std::vector<uint8_t> Network::save() const { return Serializer::save(*this); }

Status Network::load(const uint8_t* bytes, size_t n, std::unique_ptr<Network>* out,
                     ErrorInfo* error) {
  return Serializer::load(bytes, n, out, error);
}

}  // namespace bnwasm
