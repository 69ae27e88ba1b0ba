// libFuzzer target for the model loader (Network::load), built with
// AddressSanitizer and UBSan. Properties checked on every input:
//   - load never crashes, reads out of bounds or overflows; it accepts or
//     returns CorruptModel with a message;
//   - a model it accepts can run inference, and saving it and loading the
//     result gives the same bytes again (the format round-trips).
// The first input byte picks a mode: odd values repair the length header and
// the CRC-32 after mutation, so the fuzzer also reaches the parser behind the
// checksum instead of spending every run on checksum mismatches.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/network.h"

namespace {
void trap_if(bool bad) {
  if (bad) __builtin_trap();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool repair = data[0] & 1;
  std::vector<uint8_t> bytes(data + 1, data + size);
  if (repair && bytes.size() >= 16) {
    const uint32_t length = static_cast<uint32_t>(bytes.size() - 16);
    std::memcpy(bytes.data() + 8, &length, 4);
    const uint32_t crc = bnwasm::crc32(bytes.data(), bytes.size() - 4);
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  }
  std::unique_ptr<bnwasm::Network> net;
  bnwasm::ErrorInfo error;
  const bnwasm::Status st = bnwasm::Network::load(bytes.data(), bytes.size(), &net, &error);
  if (st != bnwasm::Status::Ok) {
    trap_if(st != bnwasm::Status::CorruptModel || error.status != st || error.message.empty() ||
            net != nullptr);
    return 0;
  }
  // Inference on a zero example must work on any model the loader accepts.
  std::memset(net->input(1), 0, net->input_size() * sizeof(float));
  trap_if(net->predict_one() != bnwasm::Status::Ok);
  const std::vector<uint8_t> saved = net->save();
  std::unique_ptr<bnwasm::Network> again;
  trap_if(bnwasm::Network::load(saved.data(), saved.size(), &again, &error) != bnwasm::Status::Ok);
  trap_if(again->save() != saved);
  return 0;
}
