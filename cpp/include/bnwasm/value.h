// A small self-describing tree of values (null, booleans, numbers, strings,
// arrays, objects with ordered keys): how a network's description crosses from
// JS to the core and back, and how model files store it.
//
// Its bytes (all little-endian), one tag byte then the payload:
//   0 null | 1 false | 2 true | 3 f64 | 4 string: u32 n, n bytes of UTF-8 |
//   5 array: u32 n, n values | 6 object: u32 n, n times (string key, value) |
//   7 other: u32 n, n bytes naming a JS value that has no place here
//     ("Int32Array(3)", "function"), kept only to be named in an error.
// Numbers travel as their 64 bits: no decimal text in either direction, so a
// value reads back exactly (NaN and Infinity included) and the core needs no
// number parser or printer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bnwasm {

class Value {
 public:
  enum class Kind : uint8_t { Null = 0, False = 1, True = 2, Number = 3, String = 4, Array = 5,
                              Object = 6, Other = 7 };

  Value() = default;
  static Value null() { return Value(); }
  static Value boolean(bool b) { return Value(b ? Kind::True : Kind::False); }
  static Value number(double n);
  static Value string(std::string s);
  static Value string(const char* s);  // one call at each site, not a std::string made there
  static Value array() { return Value(Kind::Array); }
  static Value object() { return Value(Kind::Object); }
  static Value other(std::string name);  // a JS value with no place here, by its name

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::True || kind_ == Kind::False; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }
  bool as_bool() const { return kind_ == Kind::True; }
  double as_number() const { return number_; }
  const std::string& as_string() const { return text_; }  // a string, or an Other's name

  // Arrays: items in order. Objects: (key, value) members in order.
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& members() const { return members_; }
  Value& push(Value v);                               // appends to an array
  Value& set(const std::string& key, Value v);        // adds or replaces a member
  Value& set(const char* key, Value v);               // (no std::string made at each call)
  const Value* get(const char* key) const;            // a member, or null

  // Appends this value's bytes.
  void write(std::vector<uint8_t>* out) const;
  // Reads one value from bytes [p, p + n); false (and out untouched) for bytes
  // that are cut short, too deep, or hold an unknown tag. `used` gets the count read.
  static bool read(const uint8_t* p, size_t n, Value* out, size_t* used);

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::Null;
  double number_ = 0;
  std::string text_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> members_;
};

}  // namespace bnwasm
