// libFuzzer target for the safetensors reader (parse_safetensors). A rejected input is a correct outcome
// when it throws fpi::Error whose message names the input and holds no raw control character; anything
// else is a finding: another exception, a sanitizer report, a hang, or an accepted file that breaks the
// reader's promises (CPU tensors whose bytes tile the data section, in offset order) or does not survive
// being written and read again unchanged. Run it with tools/fuzz.sh safetensors SECONDS.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "fpi/io/safetensors.hpp"

namespace {

using fpi::io::Safetensors;

const std::string kName = "fuzz-input";

// A broken promise must crash, so that libFuzzer saves the input.
void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

std::optional<Safetensors> parse(std::string_view bytes) {
  try {
    return fpi::io::parse_safetensors(bytes, kName);
  } catch (const fpi::Error& e) {
    const std::string_view message = e.what();
    require(message.starts_with(kName + ": "), "an error message does not name the input");
    for (const char c : message)
      require(static_cast<unsigned char>(c) >= 0x20, "an error message holds a control character");
    return std::nullopt;
  }
}

std::string bytes_of(const fpi::Tensor& t) {
  if (t.numel() == 0) return {};
  return std::string(static_cast<const char*>(t.raw_data()), t.numel() * fpi::dtype_size(t.dtype()));
}

bool same(const Safetensors& a, const Safetensors& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, tensor] : a.tensors) {
    const fpi::Tensor* other = b.find(name);
    if (!other || other->shape() != tensor.shape() || other->dtype() != tensor.dtype() ||
        bytes_of(*other) != bytes_of(tensor))
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::optional<Safetensors> file = parse(bytes);
  if (!file) return 0;

  std::uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), sizeof header_length);
  std::size_t tensor_bytes = 0;
  for (const auto& [name, tensor] : file->tensors) {
    require(!name.empty() && name != "__metadata__", "an accepted tensor has a forbidden name");
    // Tensor::is_contiguous() says false for some empty shapes ([0, 0]), which hold no bytes to lay out.
    require(tensor.device().is_cpu() && (tensor.numel() == 0 || tensor.is_contiguous()),
            "an accepted tensor is not a contiguous CPU tensor");
    tensor_bytes += static_cast<std::size_t>(tensor.numel()) * fpi::dtype_size(tensor.dtype());
  }
  require(tensor_bytes == size - 8 - header_length, "the accepted tensors do not cover the data section exactly");

  // The writer must take whatever the reader accepts, and reading that back must give the same file.
  const std::string written = fpi::io::serialize_safetensors(file->tensors, file->metadata);
  const std::optional<Safetensors> again = parse(written);
  require(again.has_value(), "a file written from an accepted one is rejected");
  require(same(*file, *again), "writing and reading an accepted file changed it");
  require(fpi::io::serialize_safetensors(again->tensors, again->metadata) == written, "writing is not deterministic");
  return 0;
}
