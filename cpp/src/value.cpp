#include "bnwasm/value.h"

#include <cstring>

namespace bnwasm {
namespace {

// Deep enough for any network description; bounds the recursion on hostile bytes.
constexpr int kMaxDepth = 32;

void put_u32(std::vector<uint8_t>* out, uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);  // wasm32 and x86-64 are little-endian
  out->insert(out->end(), b, b + 4);
}

void put_text(std::vector<uint8_t>* out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out->insert(out->end(), s.begin(), s.end());
}

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  size_t pos() const { return pos_; }

  bool u32(uint32_t* v) {
    if (n_ - pos_ < 4) return false;
    std::memcpy(v, p_ + pos_, 4);
    pos_ += 4;
    return true;
  }
  bool text(std::string* s) {
    uint32_t len = 0;
    if (!u32(&len) || n_ - pos_ < len) return false;
    s->assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return true;
  }
  bool value(Value* v, int depth) {
    if (depth > kMaxDepth || pos_ >= n_) return false;
    const uint8_t tag = p_[pos_++];
    switch (tag) {
      case 0: *v = Value::null(); return true;
      case 1: *v = Value::boolean(false); return true;
      case 2: *v = Value::boolean(true); return true;
      case 3: {
        if (n_ - pos_ < 8) return false;
        double d;
        std::memcpy(&d, p_ + pos_, 8);
        pos_ += 8;
        *v = Value::number(d);
        return true;
      }
      case 4:
      case 7: {
        std::string s;
        if (!text(&s)) return false;
        *v = tag == 4 ? Value::string(std::move(s)) : Value::other(std::move(s));
        return true;
      }
      case 5: {
        uint32_t count = 0;
        // Each item takes at least one byte: a count beyond the bytes left is corrupt.
        if (!u32(&count) || count > n_ - pos_) return false;
        Value a = Value::array();
        for (uint32_t i = 0; i < count; ++i) {
          Value item;
          if (!value(&item, depth + 1)) return false;
          a.push(std::move(item));
        }
        *v = std::move(a);
        return true;
      }
      case 6: {
        uint32_t count = 0;
        if (!u32(&count) || count > n_ - pos_) return false;
        Value o = Value::object();
        for (uint32_t i = 0; i < count; ++i) {
          std::string key;
          Value item;
          if (!text(&key) || !value(&item, depth + 1)) return false;
          o.set(key, std::move(item));
        }
        *v = std::move(o);
        return true;
      }
      default:
        return false;
    }
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace

Value Value::number(double n) {
  Value v(Kind::Number);
  v.number_ = n;
  return v;
}

Value Value::string(std::string s) {
  Value v(Kind::String);
  v.text_ = std::move(s);
  return v;
}

Value Value::string(const char* s) {
  Value v(Kind::String);
  v.text_ = s;
  return v;
}

Value Value::other(std::string name) {
  Value v(Kind::Other);
  v.text_ = std::move(name);
  return v;
}

Value& Value::push(Value v) {
  items_.push_back(std::move(v));
  return items_.back();
}

Value& Value::set(const std::string& key, Value v) {
  for (auto& m : members_)
    if (m.first == key) return m.second = std::move(v);
  members_.emplace_back(key, std::move(v));
  return members_.back().second;
}

Value& Value::set(const char* key, Value v) {
  for (auto& m : members_)
    if (m.first == key) return m.second = std::move(v);
  members_.emplace_back(key, std::move(v));
  return members_.back().second;
}

const Value* Value::get(const char* key) const {
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

void Value::write(std::vector<uint8_t>* out) const {
  out->push_back(static_cast<uint8_t>(kind_));
  switch (kind_) {
    case Kind::Number: {
      uint8_t b[8];
      std::memcpy(b, &number_, 8);
      out->insert(out->end(), b, b + 8);
      break;
    }
    case Kind::String:
    case Kind::Other:
      put_text(out, text_);
      break;
    case Kind::Array:
      put_u32(out, static_cast<uint32_t>(items_.size()));
      for (const Value& v : items_) v.write(out);
      break;
    case Kind::Object:
      put_u32(out, static_cast<uint32_t>(members_.size()));
      for (const auto& m : members_) {
        put_text(out, m.first);
        m.second.write(out);
      }
      break;
    default:
      break;
  }
}

bool Value::read(const uint8_t* p, size_t n, Value* out, size_t* used) {
  Reader r(p, n);
  Value v;
  if (!r.value(&v, 0)) return false;
  *out = std::move(v);
  *used = r.pos();
  return true;
}

}  // namespace bnwasm
