// The safetensors format (https://github.com/huggingface/safetensors), which fpi's checkpoints use so a
// PyTorch user can load them with safetensors.torch.load_file. A file is an 8-byte little-endian header
// length N, N bytes of UTF-8 JSON
//   {"__metadata__": {"key": "value", ...}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
// padded with spaces to a multiple of 8, then the data section: every tensor's bytes, row-major and
// little-endian, the tensors' ranges (offsets relative to the data section) covering it without gaps or
// overlaps. fpi reads and writes F32 and F64.
//
// Writing follows the reference implementation byte for byte: compact JSON, "__metadata__" first (left
// out when there is none, its entries in the given order), then the tensors in data order, which is F64
// tensors before F32 ones (so every tensor is aligned to its element size when the file is mapped) and by
// name (byte-wise) within a dtype. Reading trusts nothing in the file and accepts any valid order.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fpi/tensor.hpp"

namespace fpi::io {

// The header's "__metadata__": string -> string, in file order.
using Metadata = std::vector<std::pair<std::string, std::string>>;

struct Safetensors {
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in the order of their data offsets
  Metadata metadata;

  // The tensor called `name`, or null.
  const Tensor* find(const std::string& name) const;
};

// The bytes of a safetensors file holding `tensors` (any device and layout; copied to the CPU) and
// `metadata`. Names must be unique, non-empty, valid UTF-8 and not "__metadata__"; metadata keys unique.
std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const Metadata& metadata = {});
// serialize_safetensors, then write_file_atomically.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const Metadata& metadata = {});

// Parses the bytes of a safetensors file, checking everything the format requires (header length, JSON
// without duplicate keys, entries of exactly dtype/shape/data_offsets, sizes that match, ranges that
// tile the data section). Every error reads "<name>: <what is wrong>", naming the tensor or header
// field; `name` stands for the file (its path).
Safetensors parse_safetensors(std::string_view bytes, const std::string& name);
// read_file, then parse_safetensors.
Safetensors load_safetensors(const std::string& path);

}  // namespace fpi::io
