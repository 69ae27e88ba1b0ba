// A network's description: reading it from a Value (every check of a config is
// made here, once, for configs from JS and model files alike), writing it back,
// the schema of every layer type, and the shapes the layers make.
#include "bnwasm/spec.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "bnwasm/layer_op.h"

namespace bnwasm {

const double kRequired = std::numeric_limits<double>::quiet_NaN();

namespace {

// Integers as text (every bound and size in a message is one); no float printer in the core.
std::string int_text(double v) {
  if (v < 0) return "-" + int_text(-v);
  return std::to_string(static_cast<uint64_t>(v));
}

bool is_int_in(double v, double lo, double hi) {
  return std::isfinite(v) && v == std::floor(v) && v >= lo && v <= hi;
}

// A missing option, as JS names it.
Value undefined_value() { return Value::other("undefined"); }

// Sets *why to the error "<field> <message>" that names `value` (none when null); false.
// A check that fails costs its caller this one call: fields are C strings (the registry's
// names or the parser's own text, never a user's), messages literals where they can be.
bool refuse_text(SpecError* why, const char* field, const char* message, size_t n,
                 const Value* value) {
  SpecError e;
  e.field = field;
  e.message.assign(message, n);
  if (value != nullptr) e.value = *value;
  e.has_value = value != nullptr;
  *why = std::move(e);
  return false;
}
bool refuse(SpecError* why, const char* field, const char* message, const Value& value) {
  return refuse_text(why, field, message, std::strlen(message), &value);
}
bool refuse(SpecError* why, const char* field, const std::string& message, const Value& value) {
  return refuse_text(why, field, message.data(), message.size(), &value);
}
// An error that names no value: its message says it all.
bool refuse_note(SpecError* why, const std::string& message) {
  return refuse_text(why, "", message.data(), message.size(), nullptr);
}

std::string int_range(double lo, double hi) {
  return "must be an integer in [" + int_text(lo) + ", " + int_text(hi) + "]";
}

std::string number_range(const OptionDef& o) {
  const bool low = std::isfinite(o.min), high = std::isfinite(o.max);
  if (low && high)
    return "must be a finite number in " + std::string(o.above ? "(" : "[") + int_text(o.min) +
           ", " + int_text(o.max) + (o.below ? ")" : "]");
  if (low) return "must be a finite number " + std::string(o.above ? "> " : ">= ") + int_text(o.min);
  if (high) return "must be a finite number " + std::string(o.below ? "< " : "<= ") + int_text(o.max);
  return "must be a finite number";
}

bool number_ok(const OptionDef& o, double v) {
  if (!std::isfinite(v)) return false;
  if (std::isfinite(o.min) && (o.above ? !(v > o.min) : !(v >= o.min))) return false;
  if (std::isfinite(o.max) && (o.below ? !(v < o.max) : !(v <= o.max))) return false;
  return true;
}

std::string quoted_list(const std::vector<const char*>& names) {
  std::string s;
  for (size_t k = 0; k < names.size(); ++k) s += (k ? ", '" : "'") + std::string(names[k]) + "'";
  return s;
}

// Reads one option's value into its doubles (option_width(o) of them). `v` is
// null when the config leaves the option out: its default, or an error when it has none.
bool parse_option(const OptionDef& o, const Value* v, double* out, SpecError* why) {
  const char* name = o.name;
  if (v == nullptr && !std::isnan(o.fallback)) {
    switch (o.kind) {
      case OptionKind::Size:
        out[0] = out[1] = o.fallback;
        return true;
      case OptionKind::Padding:
        out[0] = static_cast<double>(PadMode::Explicit);
        for (int k = 1; k < 5; ++k) out[k] = o.fallback;
        return true;
      case OptionKind::Record:
        out[0] = 0;  // null
        for (size_t k = 0; k < o.fields.size(); ++k) out[1 + k] = o.fields[k].fallback;
        return true;
      default:
        out[0] = o.fallback;
        return true;
    }
  }
  const Value given = v != nullptr ? *v : undefined_value();
  switch (o.kind) {
    case OptionKind::Int:
      if (!given.is_number()) return refuse(why, name, "must be a number", given);
      if (!is_int_in(given.as_number(), o.min, o.max))
        return refuse(why, name, int_range(o.min, o.max), given);
      out[0] = given.as_number();
      return true;
    case OptionKind::Number:
      if (!given.is_number()) return refuse(why, name, "must be a number", given);
      if (!number_ok(o, given.as_number())) return refuse(why, name, number_range(o), given);
      out[0] = given.as_number();
      return true;
    case OptionKind::Bool:
      if (!given.is_bool()) return refuse(why, name, "must be true or false", given);
      out[0] = given.as_bool() ? 1 : 0;
      return true;
    case OptionKind::Enum:
      if (given.is_string())
        for (size_t k = 0; k < o.names.size(); ++k)
          if (given.as_string() == o.names[k]) return out[0] = static_cast<double>(k), true;
      return refuse(why, name, "must be one of " + quoted_list(o.names), given);
    case OptionKind::Size:
    case OptionKind::Padding: {
      const bool padding = o.kind == OptionKind::Padding;
      if (padding && given.is_string()) {
        // 'valid' (PyTorch's word for no padding) is stored as the zeros it means.
        const std::string& w = given.as_string();
        const PadMode mode = w == "same" ? PadMode::Same : w == "sameLower" ? PadMode::SameLower : PadMode::Explicit;
        if (mode != PadMode::Explicit || w == "valid") {
          out[0] = static_cast<double>(mode);
          for (int k = 1; k < 5; ++k) out[k] = 0;
          return true;
        }
      }
      std::vector<double> n;
      if (given.is_number()) {
        n = {given.as_number(), given.as_number()};
      } else if (given.is_array()) {
        for (const Value& item : given.items())
          n.push_back(item.is_number() ? item.as_number() : std::nan(""));
      }
      const bool shape_ok = (n.size() == 2 || (padding && n.size() == 4));
      bool numbers = shape_ok;
      if (given.is_array())
        for (const Value& item : given.items()) numbers = numbers && item.is_number();
      if (!numbers)
        return refuse(why, name,
                      padding ? "must be 'same', 'sameLower', 'valid', a number, [height, "
                                "width] or [top, left, bottom, right] of numbers"
                              : "must be a number or [height, width] of numbers",
                      given);
      for (size_t k = 0; k < n.size(); ++k)
        if (!is_int_in(n[k], o.min, o.max))
          return refuse(why, (name + ("[" + std::to_string(k) + "]")).c_str(),
                        int_range(o.min, o.max), Value::number(n[k]));
      if (!padding) {
        out[0] = n[0];
        out[1] = n[1];
        return true;
      }
      out[0] = static_cast<double>(PadMode::Explicit);
      // [height, width] pads both sides; [top, left, bottom, right] each side.
      const double t = n[0], l = n[1], b = n.size() == 4 ? n[2] : n[0], r = n.size() == 4 ? n[3] : n[1];
      out[1] = t;
      out[2] = l;
      out[3] = b;
      out[4] = r;
      return true;
    }
    case OptionKind::Record: {
      if (given.is_null()) {
        out[0] = 0;
        for (size_t k = 0; k < o.fields.size(); ++k) out[1 + k] = o.fields[k].fallback;
        return true;
      }
      if (!given.is_object()) return refuse(why, name, "must be null or an object", given);
      // Errors inside the record name it as their place: "layers[0].renorm: rMax ...".
      for (const auto& m : given.members()) {
        bool known = false;
        for (const OptionDef& f : o.fields) known = known || m.first == f.name;
        if (!known) {
          std::string list;
          for (size_t k = 0; k < o.fields.size(); ++k) list += (k ? ", " : "") + std::string(o.fields[k].name);
          refuse_note(why, "unknown option '" + m.first + "' (expected one of " + list + ")");
          why->within = std::string(".") + name;
          return false;
        }
      }
      out[0] = 1;
      for (size_t k = 0; k < o.fields.size(); ++k) {
        SpecError inner;
        if (!parse_option(o.fields[k], given.get(o.fields[k].name), out + 1 + k, &inner)) {
          inner.within = std::string(".") + name;
          *why = inner;
          return false;
        }
      }
      return true;
    }
  }
  return false;
}

// The Value of one option's doubles: what parse_option reads back to the same doubles.
Value option_value(const OptionDef& o, const double* v) {
  switch (o.kind) {
    case OptionKind::Bool:
      return Value::boolean(v[0] != 0);
    case OptionKind::Enum:
      // A value out of range (a spec built in C++) stays a number, which parsing refuses.
      if (!(v[0] >= 0 && v[0] < static_cast<double>(o.names.size()))) return Value::number(v[0]);
      return Value::string(o.names[static_cast<size_t>(v[0])]);
    case OptionKind::Size: {
      Value a = Value::array();
      a.push(Value::number(v[0]));
      a.push(Value::number(v[1]));
      return a;
    }
    case OptionKind::Padding: {
      const PadMode mode = static_cast<PadMode>(static_cast<int32_t>(v[0]));
      if (mode != PadMode::Explicit) return Value::string(mode == PadMode::Same ? "same" : "sameLower");
      Value a = Value::array();
      const bool symmetric = v[1] == v[3] && v[2] == v[4];
      for (int k = 1; k < (symmetric ? 3 : 5); ++k) a.push(Value::number(v[k]));
      return a;
    }
    case OptionKind::Record: {
      if (v[0] == 0) return Value::null();
      Value r = Value::object();
      for (size_t k = 0; k < o.fields.size(); ++k) r.set(o.fields[k].name, Value::number(v[1 + k]));
      return r;
    }
    default:
      return Value::number(v[0]);
  }
}

#ifndef BNWASM_DENSE_ONLY
// An option's description for the schema: kind, default, range, values.
Value option_schema(const OptionDef& o) {
  static const char* const kKinds[] = {"int", "number", "bool", "enum", "size", "padding", "record"};
  Value d = Value::object();
  d.set("name", Value::string(o.name));
  d.set("kind", Value::string(kKinds[static_cast<int>(o.kind)]));
  if (o.fallback_from != nullptr) {
    d.set("defaultFrom", Value::string(o.fallback_from));
  } else if (!std::isnan(o.fallback)) {
    std::vector<double> v(option_width(o));
    parse_option(o, nullptr, v.data(), nullptr);
    d.set("default", option_value(o, v.data()));
  }
  if (o.kind == OptionKind::Int || o.kind == OptionKind::Number || o.kind == OptionKind::Size ||
      o.kind == OptionKind::Padding) {
    if (std::isfinite(o.min)) d.set("min", Value::number(o.min));
    if (std::isfinite(o.max)) d.set("max", Value::number(o.max));
    if (o.above) d.set("above", Value::boolean(true));
    if (o.below) d.set("below", Value::boolean(true));
    if (o.kind != OptionKind::Padding) d.set("range", Value::string(
        o.kind == OptionKind::Number ? number_range(o) : int_range(o.min, o.max)));
  }
  if (o.kind == OptionKind::Enum) {
    Value names = Value::array();
    for (const char* n : o.names) names.push(Value::string(n));
    d.set("values", names);
  }
  if (o.kind == OptionKind::Record) {
    Value fields = Value::array();
    for (const OptionDef& f : o.fields) fields.push(option_schema(f));
    d.set("fields", fields);
  }
  d.set("doc", Value::string(o.doc));
  return d;
}
#endif

// ---- optimizers -------------------------------------------------------------------------

struct OptimizerDef {
  const char* name;
  std::vector<OptionDef> options;
};

const std::vector<OptimizerDef>& optimizer_defs() {
  const double inf = std::numeric_limits<double>::infinity();
  static const std::vector<OptimizerDef> defs = {
      {"sgd",
       {number_option("learningRate", 0.01, 0, inf, false, false,
                      BNWASM_DOC("step size (0 only refreshes the batch-norm statistics)")),
        number_option("momentum", 0, 0, 1, false, true, BNWASM_DOC("heavy-ball momentum, as torch.optim.SGD")),
        bool_option("nesterov", false, BNWASM_DOC("Nesterov momentum (needs momentum > 0)")),
        number_option("weightDecay", 0, 0, inf, false, false,
                      BNWASM_DOC("L2 added to the gradient, as torch.optim does"))}},
      {"adam",
       {number_option("learningRate", 1e-3, 0, inf, false, false, BNWASM_DOC("step size")),
        number_option("beta1", 0.9, 0, 1, false, true, BNWASM_DOC("decay of the first moment")),
        number_option("beta2", 0.999, 0, 1, false, true, BNWASM_DOC("decay of the second moment")),
        number_option("epsilon", 1e-8, 0, inf, true, false, BNWASM_DOC("added to the denominator")),
        number_option("weightDecay", 0, 0, inf, false, false,
                      BNWASM_DOC("L2 added to the gradient, as torch.optim does"))}},
  };
  return defs;
}

// The optimizer's option values from an OptimizerSpec, and back.
std::vector<double> optimizer_values(const OptimizerSpec& o) {
  if (o.type == OptimizerType::Sgd)
    return {o.learning_rate, o.momentum, o.nesterov ? 1.0 : 0.0, o.weight_decay};
  return {o.learning_rate, o.beta1, o.beta2, o.epsilon, o.weight_decay};
}

OptimizerSpec optimizer_of(OptimizerType type, const std::vector<double>& v) {
  OptimizerSpec o;
  o.type = type;
  if (type == OptimizerType::Sgd) {
    o.learning_rate = v[0];
    o.momentum = v[1];
    o.nesterov = v[2] != 0;
    o.weight_decay = v[3];
  } else {
    o.learning_rate = v[0];
    o.beta1 = v[1];
    o.beta2 = v[2];
    o.epsilon = v[3];
    o.weight_decay = v[4];
  }
  return o;
}

const char* const kLosses[] = {"softmaxCrossEntropy", "meanSquaredError"};
OptionDef loss_option() {
  return enum_option("loss", {kLosses[0], kLosses[1]}, 0, BNWASM_DOC("what training minimizes"));
}
OptionDef seed_option() {
  return int_option("seed", 1, 0, 4294967295.0, BNWASM_DOC("seeds the initial weights and the shuffling"));
}
const char* const kTopLevel[] = {"inputSize", "inputShape", "layers", "loss", "optimizer", "seed"};

std::string expected_list(const std::vector<const char*>& names) {
  std::string s;
  for (size_t k = 0; k < names.size(); ++k) (s += k ? ", " : "") += names[k];
  return s;
}

bool unknown_keys(const Value& object, const std::vector<const char*>& allowed, SpecError* why) {
  for (const auto& m : object.members()) {
    bool known = false;
    for (const char* a : allowed) known = known || m.first == a;
    if (!known) {
      refuse_note(
          why, "unknown option '" + m.first + "' (expected one of " + expected_list(allowed) + ")");
      return true;
    }
  }
  return false;
}

std::string layer_where(size_t i, const std::string& name) {
  return "layers[" + std::to_string(i) + "]" + (name.empty() ? "" : " (" + name + ")");
}

bool fail(SpecFailure* why, const std::string& where, SpecError&& e) {
  why->where = where;
  why->error = std::move(e);
  return false;
}
// The failure at `where`: see refuse.
bool fail(SpecFailure* why, const std::string& where, const char* field, const char* message,
          const Value& value) {
  why->where = where;
  return refuse(&why->error, field, message, value);
}
bool fail(SpecFailure* why, const std::string& where, const char* field, const std::string& message,
          const Value& value) {
  why->where = where;
  return refuse(&why->error, field, message, value);
}
bool fail_note(SpecFailure* why, const std::string& where, const std::string& message) {
  why->where = where;
  return refuse_note(&why->error, message);
}

// One layer of a config: its type, name, inputs (as names) and options.
bool parse_layer(const Value& v, size_t i, LayerSpec* out, SpecFailure* why) {
  const std::string at = "layers[" + std::to_string(i) + "]";
  if (!v.is_object()) return fail(why, "config", at.c_str(), "must be an object", v);
  std::vector<const char*> type_names;
  for (const LayerDef* d : layer_defs()) type_names.push_back(d->name);
  const Value* type = v.get("type");
  const LayerDef* def = type != nullptr && type->is_string() ? find_layer_def(type->as_string()) : nullptr;
  if (def == nullptr && type != nullptr && type->is_string()) {
    for (const char* left_out : left_out_layer_types())
      if (type->as_string() == left_out)
        return fail(why, at, "type",
                    "'" + type->as_string() +
                        "' is not in this build of bnwasm (the dense build has no convolution "
                        "or pooling layers)",
                    *type);
  }
  if (def == nullptr)
    return fail(why, at, "type", "must be one of " + quoted_list(type_names),
                type != nullptr ? *type : undefined_value());
  LayerSpec l = LayerSpec::of(def);
  if (const Value* name = v.get("name")) {
    if (!name->is_string() || name->as_string().empty())
      return fail(why, at, "name", "must be a non-empty string", *name);
    if (name->as_string() == "input")
      return fail(why, at, "name", "must not be 'input', the name of the network's input", *name);
    l.name = name->as_string();
  }
  const std::string where = layer_where(i, l.name);
  std::vector<const char*> allowed = {"type"};
  for (const OptionDef& o : def->options) allowed.push_back(o.name);
  allowed.push_back("name");
  allowed.push_back("inputs");
  SpecError e;
  if (unknown_keys(v, allowed, &e)) return fail(why, where, std::move(e));
  if (const Value* inputs = v.get("inputs")) {
    bool ok = inputs->is_array() && !inputs->items().empty();
    for (const Value& item : inputs->items()) ok = ok && item.is_string();
    if (!ok)
      return fail(why, where, "inputs", "must be an array of the names of earlier layers", *inputs);
    for (const Value& item : inputs->items()) l.input_names.push_back(item.as_string());
  }
  for (size_t k = 0; k < def->options.size(); ++k) {
    const OptionDef& o = def->options[k];
    if (o.fallback_from != nullptr && v.get(o.name) == nullptr) {
      const size_t from = static_cast<size_t>(def->option(o.fallback_from));
      for (size_t j = 0; j < option_width(o); ++j) l.values[def->offsets[k] + j] = l.values[def->offsets[from] + j];
      continue;
    }
    // A record's fields name the record as their place ("layers[0].renorm: rMax ...").
    if (!parse_option(o, v.get(o.name), l.values.data() + def->offsets[k], &e))
      return fail(why, where + e.within, std::move(e));
  }
  *out = std::move(l);
  return true;
}

// Resolves inputs, checks each layer's own rules, shapes and the limits of the whole network.
bool check_network(NetworkSpec* s, SpecFailure* why) {
  const std::vector<LayerSpec>& layers = s->layers;
  std::vector<Shape> shapes;
  std::vector<uint8_t> used(layers.size(), 0);  // bytes, not vector<bool> (network.cpp, folded)
  int64_t weights = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerSpec& l = s->layers[i];
    const LayerDef& def = *l.def;
    const std::string where = layer_where(i, l.name);
    for (size_t j = 0; j < i; ++j)
      if (!l.name.empty() && layers[j].name == l.name)
        return fail(why, where, "name", "is already the name of layers[" + std::to_string(j) + "]",
                    Value::string(l.name));
    l.inputs.clear();
    if (l.input_names.empty()) {
      if (def.min_inputs > 1)
        return fail(why, where, "inputs",
                    "must name the " + std::to_string(def.min_inputs) +
                        " or more earlier layers a " + def.name + " layer takes",
                    undefined_value());
      l.inputs.push_back(static_cast<int32_t>(i) - 1);
    }
    for (size_t k = 0; k < l.input_names.size(); ++k) {
      const std::string& n = l.input_names[k];
      const std::string field = "inputs[" + std::to_string(k) + "]";
      int32_t found = n == "input" ? -1 : -2;
      for (size_t j = 0; j < layers.size() && found == -2; ++j)
        if (layers[j].name == n) found = static_cast<int32_t>(j);
      if (found == -2)
        return fail(why, where, field.c_str(),
                    "names no layer of this network ('input' is the network's input)",
                    Value::string(n));
      if (found >= static_cast<int32_t>(i))
        return fail(why, where, field.c_str(),
                    std::string(found == static_cast<int32_t>(i) ? "names this layer itself"
                                                                 : "names a later layer") +
                        "; a layer's inputs come before it (a network has no cycles)",
                    Value::string(n));
      l.inputs.push_back(found);
    }
    const size_t n_in = l.inputs.size();
    if (n_in < def.min_inputs || n_in > def.max_inputs) {
      const std::string count = def.min_inputs == def.max_inputs
                                    ? std::to_string(def.min_inputs)
                                    : std::to_string(def.min_inputs) + " or more";
      Value names = Value::array();
      for (const std::string& n : l.input_names) names.push(Value::string(n));
      return fail(why, where, "inputs",
                  "must name " + count +
                      (def.max_inputs == 1 ? " layer for a " : " layers for a ") + def.name +
                      " layer",
                  names);
    }
    for (int32_t p : l.inputs)
      if (p >= 0) used[p] = 1;
    SpecError e;
    if (def.check != nullptr && !def.check(l, &e)) return fail(why, where, std::move(e));
    std::vector<Shape> in;
    for (int32_t p : l.inputs) in.push_back(p < 0 ? input_shape(*s) : shapes[p]);
    Shape out;
    if (!def.shape(l, in.data(), in.size(), &out, &e)) return fail(why, where, std::move(e));
    if (out.size() > (int64_t(1) << 24))
      return fail(
          why, where, "type",
          "outputs " + std::to_string(out.size()) + " values per example, more than the 2^24 limit",
          Value::string(def.name));
    for (size_t k = 0; k < def.tensors.size(); ++k) {
      const TensorDef& t = def.tensors[k];
      if (t.when != nullptr && l.get(t.when) == 0) continue;
      int64_t n = 1;
      for (int64_t d : def.tensor_shape(k, l, in.data(), out)) n *= d;
      weights += n;
    }
    // Parameters, gradients and two optimizer moments must fit in 32-bit wasm memory.
    if (weights > (int64_t(1) << 28))
      return fail_note(why, where,
                       "brings the network to " + std::to_string(weights) +
                           " weights, more than the 268435456 (2^28) that fit in wasm memory "
                           "with their gradients and optimizer moments");
    shapes.push_back(out);
  }
  for (size_t i = 0; i + 1 < layers.size(); ++i)
    if (!used[i])
      return fail_note(why, layer_where(i, layers[i].name),
                       "feeds no later layer; only the last layer is the network's output "
                       "(name it in a later layer's inputs, or remove it)");
  // Without layers the network's output is its input.
  const int64_t outputs = layers.empty() ? input_shape(*s).size() : shapes.back().size();
  if (s->loss == LossType::SoftmaxCrossEntropy && outputs < 2)
    return fail(
        why, "config", "loss",
        (layers.empty() ? "needs at least 2 outputs, the input of a network without layers has "
                        : "needs at least 2 outputs, the last layer has ") +
            std::to_string(outputs),
        Value::string(kLosses[0]));
  return true;
}

}  // namespace

OptionDef int_option(const char* name, double fallback, double min, double max, const char* doc) {
  OptionDef o(name, OptionKind::Int, fallback);
  o.min = min;
  o.max = max;
  o.doc = doc;
  return o;
}

OptionDef number_option(const char* name, double fallback, double min, double max, bool above,
                        bool below, const char* doc) {
  OptionDef o(name, OptionKind::Number, fallback);
  o.min = min;
  o.max = max;
  o.above = above;
  o.below = below;
  o.doc = doc;
  return o;
}

OptionDef bool_option(const char* name, bool fallback, const char* doc) {
  OptionDef o(name, OptionKind::Bool, fallback ? 1.0 : 0.0);
  o.doc = doc;
  return o;
}

OptionDef enum_option(const char* name, std::vector<const char*> names, size_t fallback,
                      const char* doc) {
  OptionDef o(name, OptionKind::Enum, static_cast<double>(fallback));
  o.names = std::move(names);
  o.doc = doc;
  return o;
}

OptionDef size_option(const char* name, double fallback, double min, const char* doc,
                      const char* fallback_from) {
  OptionDef o(name, OptionKind::Size, fallback);
  o.min = min;
  o.max = 65536.0;
  o.fallback_from = fallback_from;
  o.doc = doc;
  return o;
}

OptionDef padding_option(const char* name, const char* doc) {
  OptionDef o(name, OptionKind::Padding, 0);
  o.max = 65536.0;
  o.doc = doc;
  return o;
}

size_t option_width(const OptionDef& o) {
  switch (o.kind) {
    case OptionKind::Size: return 2;
    case OptionKind::Padding: return 5;
    case OptionKind::Record: return 1 + o.fields.size();
    default: return 1;
  }
}

int LayerDef::option(const char* name) const {
  for (size_t k = 0; k < options.size(); ++k)
    if (std::string(options[k].name) == name) return static_cast<int>(k);
  return -1;
}

const LayerDef* find_layer_def(const std::string& name) {
  for (const LayerDef* d : layer_defs())
    if (name == d->name) return d;
  return nullptr;
}

LayerSpec LayerSpec::of(const LayerDef* def) {
  LayerSpec l;
  l.def = def;
  l.values.assign(def->width, 0.0);
  for (size_t k = 0; k < def->options.size(); ++k) {
    const OptionDef& o = def->options[k];
    if (!std::isnan(o.fallback)) parse_option(o, nullptr, l.values.data() + def->offsets[k], nullptr);
  }
  for (size_t k = 0; k < def->options.size(); ++k) {
    const OptionDef& o = def->options[k];
    if (o.fallback_from == nullptr) continue;
    const size_t from = static_cast<size_t>(def->option(o.fallback_from));
    for (size_t j = 0; j < option_width(o); ++j) l.values[def->offsets[k] + j] = l.values[def->offsets[from] + j];
  }
  return l;
}

LayerSpec LayerSpec::of(const char* type) { return of(find_layer_def(type)); }

double LayerSpec::get(const char* option, size_t k) const {
  const int o = def->option(option);
  return o < 0 ? 0.0 : values[def->offsets[static_cast<size_t>(o)] + k];
}

LayerSpec& LayerSpec::set(const char* option, double v, size_t k) {
  const int o = def->option(option);
  if (o >= 0) values[def->offsets[static_cast<size_t>(o)] + k] = v;
  return *this;
}

Shape input_shape(const NetworkSpec& s) {
  if (s.input_height == 0) return Shape{s.input_size, 1, 1, false};
  return Shape{s.input_channels, s.input_height, s.input_width, true};
}

std::vector<Shape> layer_shapes(const NetworkSpec& s) {
  std::vector<Shape> shapes;
  SpecError unused;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const std::vector<Shape> in = input_shapes(s, shapes, i);
    Shape out;
    s.layers[i].def->shape(s.layers[i], in.data(), in.size(), &out, &unused);
    shapes.push_back(out);
  }
  return shapes;
}

std::vector<Shape> input_shapes(const NetworkSpec& s, const std::vector<Shape>& shapes, size_t i) {
  std::vector<Shape> in;
  for (int32_t p : s.layers[i].inputs) in.push_back(p < 0 ? input_shape(s) : shapes[p]);
  return in;
}

bool parse_network(const Value& c, NetworkSpec* out, SpecFailure* why) {
  // Where a failure is: made once, not at each check.
  const std::string nowhere, config = "config", optimizer = "optimizer";
  if (!c.is_object()) return fail(why, nowhere, "config", "must be an object", c);
  SpecError e;
  if (unknown_keys(c, std::vector<const char*>(std::begin(kTopLevel), std::end(kTopLevel)), &e))
    return fail(why, config, std::move(e));
  NetworkSpec s;
  const Value* size = c.get("inputSize");
  if (const Value* shape = c.get("inputShape")) {
    bool ok = shape->is_array() && shape->items().size() == 3;
    for (const Value& d : shape->items()) ok = ok && d.is_number();
    if (!ok)
      return fail(why, config, "inputShape", "must be [channels, height, width], three numbers",
                  *shape);
    const double d[3] = {shape->items()[0].as_number(), shape->items()[1].as_number(),
                         shape->items()[2].as_number()};
    for (size_t k = 0; k < 3; ++k)
      if (!is_int_in(d[k], 1, 1 << 24))
        return fail(why, config, ("inputShape[" + std::to_string(k) + "]").c_str(),
                    int_range(1, 1 << 24), Value::number(d[k]));
    const double product = d[0] * d[1] * d[2];
    if (size != nullptr && !(size->is_number() && size->as_number() == product)) {
      return fail(why, config, "inputSize",
                  "does not match inputShape [" + int_text(d[0]) + "," + int_text(d[1]) + "," +
                      int_text(d[2]) + "] (" + int_text(product) + " values); give one of them",
                  *size);
    }
    if (product > (1 << 24))
      return fail(why, config, "inputSize", int_range(1, 1 << 24), Value::number(product));
    s.input_channels = static_cast<int32_t>(d[0]);
    s.input_height = static_cast<int32_t>(d[1]);
    s.input_width = static_cast<int32_t>(d[2]);
    s.input_size = static_cast<int32_t>(product);
  } else {
    const Value given = size != nullptr ? *size : undefined_value();
    if (!given.is_number()) return fail(why, config, "inputSize", "must be a number", given);
    if (!is_int_in(given.as_number(), 1, 1 << 24))
      return fail(why, config, "inputSize", int_range(1, 1 << 24), given);
    s.input_size = static_cast<int32_t>(given.as_number());
  }
  const Value* layers = c.get("layers");
  // An empty array is a network without layers: its output is its input.
  if (layers == nullptr || !layers->is_array())
    return fail(why, config, "layers", "must be an array of layer configs",
                layers != nullptr ? *layers : undefined_value());
  if (layers->items().size() > 10000)
    return fail(why, config, "layers", "must have at most 10000 layers",
                Value::number(static_cast<double>(layers->items().size())));
  for (size_t i = 0; i < layers->items().size(); ++i) {
    LayerSpec l;
    if (!parse_layer(layers->items()[i], i, &l, why)) return false;
    s.layers.push_back(std::move(l));
  }
  const OptionDef loss = loss_option();
  double v = 0;
  if (!parse_option(loss, c.get("loss"), &v, &e)) return fail(why, config, std::move(e));
  s.loss = static_cast<LossType>(static_cast<int32_t>(v));
  if (!parse_option(seed_option(), c.get("seed"), &v, &e)) return fail(why, config, std::move(e));
  s.seed = static_cast<uint32_t>(v);

  const Value adam = [] {
    Value o = Value::object();
    o.set("type", Value::string("adam"));
    return o;
  }();
  const Value* opt = c.get("optimizer");
  if (opt == nullptr) opt = &adam;
  if (!opt->is_object()) return fail(why, nowhere, "optimizer", "must be an object", *opt);
  std::vector<const char*> names;
  for (const OptimizerDef& d : optimizer_defs()) names.push_back(d.name);
  OptionDef type = enum_option("type", names, 0, "");
  type.fallback = kRequired;
  if (!parse_option(type, opt->get("type"), &v, &e)) return fail(why, optimizer, std::move(e));
  const OptimizerDef& od = optimizer_defs()[static_cast<size_t>(v)];
  std::vector<const char*> allowed = {"type"};
  for (const OptionDef& o : od.options) allowed.push_back(o.name);
  if (unknown_keys(*opt, allowed, &e)) return fail(why, optimizer, std::move(e));
  std::vector<double> values(od.options.size());
  for (size_t k = 0; k < od.options.size(); ++k)
    if (!parse_option(od.options[k], opt->get(od.options[k].name), &values[k], &e))
      return fail(why, optimizer, std::move(e));
  s.optimizer = optimizer_of(static_cast<OptimizerType>(static_cast<int32_t>(v)), values);
  if (s.optimizer.type == OptimizerType::Sgd && s.optimizer.nesterov && s.optimizer.momentum == 0)
    return fail(why, optimizer, "nesterov", "needs momentum > 0", Value::boolean(true));
  if (!check_network(&s, why)) return false;
  *out = std::move(s);
  return true;
}

bool validate_network(const NetworkSpec& spec, NetworkSpec* out, SpecFailure* why) {
  return parse_network(network_value(spec), out, why);
}

Value network_value(const NetworkSpec& s) {
  Value c = Value::object();
  c.set("inputSize", Value::number(s.input_size));
  if (s.input_height != 0) {
    Value shape = Value::array();
    for (int32_t d : {s.input_channels, s.input_height, s.input_width}) shape.push(Value::number(d));
    c.set("inputShape", shape);
  }
  Value layers = Value::array();
  for (const LayerSpec& l : s.layers) {
    Value v = Value::object();
    v.set("type", Value::string(l.def->name));
    for (size_t k = 0; k < l.def->options.size(); ++k)
      v.set(l.def->options[k].name, option_value(l.def->options[k], l.values.data() + l.def->offsets[k]));
    if (!l.name.empty()) v.set("name", Value::string(l.name));
    if (!l.input_names.empty()) {
      Value inputs = Value::array();
      for (const std::string& n : l.input_names) inputs.push(Value::string(n));
      v.set("inputs", inputs);
    }
    layers.push(std::move(v));
  }
  c.set("layers", layers);
  c.set("loss", Value::string(kLosses[static_cast<int>(s.loss)]));
  const OptimizerDef& od = optimizer_defs()[static_cast<size_t>(s.optimizer.type)];
  Value opt = Value::object();
  opt.set("type", Value::string(od.name));
  const std::vector<double> values = optimizer_values(s.optimizer);
  for (size_t k = 0; k < od.options.size(); ++k) opt.set(od.options[k].name, option_value(od.options[k], &values[k]));
  c.set("optimizer", opt);
  c.set("seed", Value::number(s.seed));
  return c;
}

#ifdef BNWASM_DENSE_ONLY
// The dense build answers only which layer types it has (scripts/build-dense.mjs asks): the
// web facade reads the full build's schema, so this one carries no option tables.
Value schema_value() {
  Value layers = Value::array();
  for (const LayerDef* d : layer_defs()) {
    Value t = Value::object();
    t.set("type", Value::string(d->name));
    layers.push(t);
  }
  Value s = Value::object();
  s.set("layers", layers);
  return s;
}
#else
Value schema_value() {
  Value layers = Value::array();
  for (const LayerDef* d : layer_defs()) {
    Value t = Value::object();
    t.set("type", Value::string(d->name));
    t.set("doc", Value::string(d->doc));
    Value options = Value::array();
    for (const OptionDef& o : d->options) options.push(option_schema(o));
    t.set("options", options);
    t.set("minInputs", Value::number(d->min_inputs));
    t.set("maxInputs", Value::number(d->max_inputs));
    Value tensors = Value::array();
    for (const TensorDef& x : d->tensors) {
      if (x.hidden) continue;
      Value tv = Value::object();
      tv.set("name", Value::string(x.name));
      tv.set("trainable", Value::boolean(!x.statistic));
      tv.set("torch", Value::string(x.torch));
      tv.set("tfjs", Value::string(x.tfjs));
      if (x.when != nullptr) tv.set("when", Value::string(x.when));
      tensors.push(tv);
    }
    t.set("tensors", tensors);
    layers.push(t);
  }
  Value optimizers = Value::array();
  for (const OptimizerDef& d : optimizer_defs()) {
    Value t = Value::object();
    t.set("type", Value::string(d.name));
    Value options = Value::array();
    for (const OptionDef& o : d.options) options.push(option_schema(o));
    t.set("options", options);
    optimizers.push(t);
  }
  Value network = Value::array();
  Value losses = Value::array();
  for (const char* l : kLosses) losses.push(Value::string(l));
  network.push(option_schema(loss_option()));
  network.push(option_schema(seed_option()));
  Value s = Value::object();
  s.set("layers", layers);
  s.set("optimizers", optimizers);
  s.set("network", network);
  return s;
}
#endif

Value layers_value(const NetworkSpec& s) {
  const std::vector<Shape> shapes = layer_shapes(s);
  auto dims = [](const Shape& x) {
    Value a = Value::array();
    if (x.spatial) {
      for (int64_t d : {x.c, x.h, x.w}) a.push(Value::number(static_cast<double>(d)));
    } else {
      a.push(Value::number(static_cast<double>(x.c)));
    }
    return a;
  };
  Value out = Value::array();
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& l = s.layers[i];
    const std::vector<Shape> in = input_shapes(s, shapes, i);
    Value v = Value::object();
    v.set("index", Value::number(static_cast<double>(i)));
    v.set("type", Value::string(l.def->name));
    if (!l.name.empty()) v.set("name", Value::string(l.name));
    Value inputs = Value::array();
    for (int32_t p : l.inputs) inputs.push(Value::number(p));
    v.set("inputs", inputs);
    Value in_shapes = Value::array();
    for (const Shape& x : in) in_shapes.push(dims(x));
    v.set("inputShapes", in_shapes);
    v.set("outputShape", dims(shapes[i]));
    Value tensors = Value::array();
    for (size_t k = 0; k < l.def->tensors.size(); ++k) {
      const TensorDef& t = l.def->tensors[k];
      if (t.hidden || (t.when != nullptr && l.get(t.when) == 0)) continue;
      Value tv = Value::object();
      tv.set("name", Value::string(t.name));
      Value shape = Value::array();
      for (int64_t d : l.def->tensor_shape(k, l, in.data(), shapes[i])) shape.push(Value::number(static_cast<double>(d)));
      tv.set("shape", shape);
      tv.set("trainable", Value::boolean(!t.statistic));
      tv.set("torch", Value::string(t.torch));
      tv.set("tfjs", Value::string(t.tfjs));
      tensors.push(tv);
    }
    v.set("tensors", tensors);
    if (l.def->facts != nullptr) l.def->facts(l, in.data(), shapes[i], &v);
    v.set("macs", Value::number(l.def->macs != nullptr
                                    ? static_cast<double>(l.def->macs(l, in.data(), shapes[i]))
                                    : 0.0));
    out.push(v);
  }
  return out;
}

}  // namespace bnwasm
