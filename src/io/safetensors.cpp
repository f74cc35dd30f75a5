// Reading and writing safetensors files. Writing lays the file out as the reference implementation does
// (so fpi's files are byte for byte what safetensors.torch.save writes for the same tensors); reading
// treats every byte as hostile: each size is checked before it is used, arithmetic on sizes is
// overflow-checked, and the parsed header is checked against everything the format promises.
#include "fpi/io/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fpi/io/file.hpp"

namespace fpi::io {
namespace {

// ordered_json keeps the header's order, so metadata comes back in file order and tensors whose data
// ranges tie (empty ones) keep theirs.
using Json = nlohmann::ordered_json;

// The reference implementation's limit: anything larger is a damaged or hostile file, not a header.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::size_t kLengthBytes = 8;
constexpr const char* kMetadataKey = "__metadata__";
// A header nests at most this deep: the header object, an entry, its shape or data_offsets array.
constexpr int kMaxNesting = 3;

// The other dtypes of the format, so a file written from another framework gets "not supported" rather
// than "unknown".
constexpr std::string_view kOtherDtypes[] = {"BOOL", "U8",  "I8",  "U16",     "I16",     "F16",     "BF16",
                                             "U32",  "I32", "U64", "I64",     "C64",     "F8_E5M2", "F8_E4M3",
                                             "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2"};

void require_little_endian(const std::string& where) {
  if constexpr (std::endian::native != std::endian::little)
    fail(where, ": safetensors data is little-endian and fpi converts it only on little-endian hosts");
}

// A name in an error message: single-quoted, with control characters escaped and bytes that are not
// UTF-8 replaced, so a message from a hostile file stays one readable line.
std::string quote(const std::string& text) {
  const std::string json = Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
  return detail::concat("'", std::string_view(json).substr(1, json.size() - 2), "'");
}

const char* kind(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::null: return "null";
    default: return "a number";
  }
}

const char* dtype_code(DType dtype) { return dtype == kFloat64 ? "F64" : "F32"; }

std::string offsets_str(std::uint64_t begin, std::uint64_t end) {
  return detail::concat("[", begin, ", ", end, "]");
}

// ---- writing ----

// The JSON string literal of `text` (compact, UTF-8 kept as is, as serde_json writes it).
std::string json_string(const std::string& text, const std::string& where, const char* what) {
  try {
    return Json(text).dump();
  } catch (const Json::exception&) {
    fail(where, ": ", what, " ", quote(text), " is not valid UTF-8");
  }
}

struct Outgoing {
  const std::string* name;
  Tensor host;  // contiguous, on the CPU
};

std::string serialize(const std::vector<std::pair<std::string, Tensor>>& tensors, const Metadata& metadata,
                      const std::string& where) {
  require_little_endian(where);
  std::vector<Outgoing> order;
  std::set<std::string_view> names;
  for (const auto& [name, tensor] : tensors) {
    FPI_CHECK(!name.empty(), where, ": a tensor has an empty name");
    FPI_CHECK(name != kMetadataKey, where, ": a tensor cannot be called ", kMetadataKey,
              ", the header's key for the metadata");
    FPI_CHECK(names.insert(name).second, where, ": two tensors are called ", quote(name));
    FPI_CHECK(tensor.defined(), where, ": tensor ", quote(name), " is undefined");
    order.push_back({&name, tensor.detach().to(kCPU).contiguous()});
  }
  // The reference's order: larger elements first, so every tensor is aligned to its element size, then
  // by name, which makes the file a function of the tensors and not of the order they were listed in.
  std::sort(order.begin(), order.end(), [](const Outgoing& a, const Outgoing& b) {
    const std::size_t sa = dtype_size(a.host.dtype()), sb = dtype_size(b.host.dtype());
    return sa != sb ? sa > sb : *a.name < *b.name;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    std::set<std::string_view> keys;
    header += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      FPI_CHECK(keys.insert(key).second, where, ": metadata key ", quote(key), " appears twice");
      if (header.back() != '{') header += ',';
      header += json_string(key, where, "metadata key");
      header += ':';
      header += json_string(value, where, "the value of metadata key");
    }
    header += '}';
  }
  std::uint64_t offset = 0;
  for (const Outgoing& item : order) {
    const std::uint64_t bytes = static_cast<std::uint64_t>(item.host.numel()) * dtype_size(item.host.dtype());
    if (header.size() > 1) header += ',';
    header += json_string(*item.name, where, "tensor name");
    header += ":{\"dtype\":\"";
    header += dtype_code(item.host.dtype());
    header += "\",\"shape\":[";
    for (std::size_t d = 0; d < item.host.shape().size(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(item.host.shape()[d]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += '}';
  // Spaces up to a multiple of 8, so the data section starts aligned for any element size.
  header.append((kLengthBytes - header.size() % kLengthBytes) % kLengthBytes, ' ');
  FPI_CHECK(header.size() <= kMaxHeaderBytes, where, ": the header would take ", header.size(),
            " bytes, over the format's limit of ", kMaxHeaderBytes, "; store fewer tensors or less metadata");

  std::string out;
  out.reserve(kLengthBytes + header.size() + offset);
  const std::uint64_t length = header.size();
  for (std::size_t i = 0; i < kLengthBytes; ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
  out += header;
  for (const Outgoing& item : order)
    if (item.host.numel() > 0)
      out.append(static_cast<const char*>(item.host.raw_data()), item.host.numel() * dtype_size(item.host.dtype()));
  return out;
}

// ---- reading ----

struct Incoming {
  std::string name;
  DType dtype = kFloat32;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// Refuses nesting deeper than a header has before nlohmann builds anything: each level costs the parser
// memory, and a 100 MB header of '[' would cost gigabytes.
void check_nesting(std::string_view header, const std::string& name) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < header.size(); ++i) {
    const char c = header[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      FPI_CHECK(++depth <= kMaxNesting, name, ": the header nests deeper than a safetensors header (byte ", i,
                " opens level ", depth, "; a header holds objects of strings and arrays of integers)");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

// nlohmann keeps the last of two equal keys silently, so the parser callback watches every object's keys.
// The first duplicate is remembered (the callback must not throw through the parser) and reported after.
Json parse_header(std::string_view header, const std::string& name) {
  check_nesting(header, name);
  std::vector<std::set<std::string>> open;
  std::string entry;  // the header key whose value is being parsed
  std::string duplicate;
  const auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      open.pop_back();
    } else if (event == Json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open.back().insert(key).second && duplicate.empty())
        duplicate = open.size() == 1 ? detail::concat("the header has the key ", quote(key), " twice")
                                     : detail::concat(quote(entry), " has the key ", quote(key), " twice");
      if (open.size() == 1) entry = key;
    }
    return true;
  };
  Json json;
  try {
    json = Json::parse(header.begin(), header.end(), callback);
  } catch (const Json::exception& e) {
    const std::string_view what = e.what();
    const std::size_t bracket = what.find("] ");
    fail(name, ": the header is not valid JSON: ", bracket == std::string_view::npos ? what : what.substr(bracket + 2));
  }
  FPI_CHECK(duplicate.empty(), name, ": ", duplicate);
  return json;
}

// A non-negative integer of the header that fits in int64 (sizes and offsets are used as both).
std::uint64_t read_size(const Json& value, const std::string& where) {
  FPI_CHECK(value.is_number_integer(), where, " is ", value.is_number() ? value.dump() : kind(value),
            ", not a non-negative integer");
  FPI_CHECK(value.is_number_unsigned(), where, " is ", value.get<std::int64_t>(), "; it cannot be negative");
  const std::uint64_t size = value.get<std::uint64_t>();
  FPI_CHECK(size <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), where, " is ", size,
            ", too large for a 64-bit signed size");
  return size;
}

Incoming read_entry(const std::string& key, const Json& value, std::uint64_t data_size, const std::string& name) {
  const std::string where = name + ": tensor " + quote(key);
  FPI_CHECK(!key.empty(), name, ": a tensor has an empty name");
  FPI_CHECK(value.is_object(), where, " is ", kind(value), ", not an object with dtype, shape and data_offsets");
  for (const auto& field : value.items())
    FPI_CHECK(field.key() == "dtype" || field.key() == "shape" || field.key() == "data_offsets", where,
              ": unknown field ", quote(field.key()), " (an entry has exactly dtype, shape and data_offsets)");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    FPI_CHECK(value.contains(field), where, ": the field ", field, " is missing");

  Incoming in;
  in.name = key;
  const Json& dtype = value["dtype"];
  FPI_CHECK(dtype.is_string(), where, ": dtype is ", kind(dtype), ", not a string");
  const std::string& code = dtype.get_ref<const std::string&>();
  if (code == "F32" || code == "F64") {
    in.dtype = code == "F32" ? kFloat32 : kFloat64;
  } else {
    const bool known = std::find(std::begin(kOtherDtypes), std::end(kOtherDtypes), code) != std::end(kOtherDtypes);
    fail(where, ": ", known ? "dtype " + code : "unknown dtype " + quote(code),
         " is not supported (fpi reads F32 and F64)");
  }

  const Json& shape = value["shape"];
  FPI_CHECK(shape.is_array(), where, ": shape is ", kind(shape), ", not an array of sizes");
  for (std::size_t d = 0; d < shape.size(); ++d)
    in.shape.push_back(static_cast<std::int64_t>(read_size(shape[d], detail::concat(where, ": shape[", d, "]"))));
  // The product of the non-zero sizes bounds every partial product (numel, strides), so nothing that
  // fpi computes from the shape can overflow, whichever size is zero.
  std::int64_t nonzero_product = 1;
  for (const std::int64_t size : in.shape)
    FPI_CHECK(!__builtin_mul_overflow(nonzero_product, std::max<std::int64_t>(size, 1), &nonzero_product), where,
              ": shape ", shape_str(in.shape), " has more elements than a 64-bit count can hold");

  const Json& offsets = value["data_offsets"];
  FPI_CHECK(offsets.is_array() && offsets.size() == 2, where, ": data_offsets is ", kind(offsets),
            offsets.is_array() ? detail::concat(" of ", offsets.size(), " values") : std::string(),
            ", not [begin, end]");
  in.begin = read_size(offsets[0], where + ": data_offsets[0]");
  in.end = read_size(offsets[1], where + ": data_offsets[1]");
  FPI_CHECK(in.begin <= in.end, where, ": data_offsets ", offsets_str(in.begin, in.end), " end before they begin");
  FPI_CHECK(in.end <= data_size, where, ": data_offsets ", offsets_str(in.begin, in.end),
            " run past the end of the data section (", data_size, " bytes); the file is truncated or damaged");

  const std::int64_t numel = shape_numel(in.shape);
  std::uint64_t bytes = 0;
  const bool fits = !__builtin_mul_overflow(static_cast<std::uint64_t>(numel), dtype_size(in.dtype), &bytes);
  FPI_CHECK(fits && bytes == in.end - in.begin, where, ": shape ", shape_str(in.shape), " of ", code, " needs ",
            fits ? std::to_string(bytes) : std::string("more than 2^64"), " bytes, but data_offsets ",
            offsets_str(in.begin, in.end), " hold ", in.end - in.begin);
  return in;
}

Metadata read_metadata(const Json& value, const std::string& name) {
  FPI_CHECK(value.is_object(), name, ": ", kMetadataKey, " is ", kind(value), ", not an object of strings");
  Metadata metadata;
  for (const auto& item : value.items()) {
    FPI_CHECK(item.value().is_string(), name, ": ", kMetadataKey, " ", quote(item.key()), " is ",
              kind(item.value()), ", not a string");
    metadata.emplace_back(item.key(), item.value().get<std::string>());
  }
  return metadata;
}

// The format allows no holes and no overlaps: sorted by offset, each tensor starts where the last ended
// and the last ends at the end of the data.
void check_tiling(const std::vector<Incoming>& sorted, std::uint64_t data_size, const std::string& name) {
  std::uint64_t covered = 0;
  const Incoming* previous = nullptr;
  for (const Incoming& in : sorted) {
    FPI_CHECK(in.begin >= covered, name, ": tensor ", quote(in.name), " (data_offsets ", offsets_str(in.begin, in.end),
              ") overlaps tensor ", quote(previous->name), " (data_offsets ", offsets_str(previous->begin, covered),
              ")");
    FPI_CHECK(in.begin == covered, name, ": the data section has a hole: bytes ", offsets_str(covered, in.begin),
              " belong to no tensor (the next is ", quote(in.name), ")");
    covered = in.end;
    previous = &in;
  }
  FPI_CHECK(covered == data_size, name, ": the data section has a hole: bytes ", offsets_str(covered, data_size),
            " at its end belong to no tensor");
}

}  // namespace

const Tensor* Safetensors::find(const std::string& name) const {
  for (const auto& [key, tensor] : tensors)
    if (key == name) return &tensor;
  return nullptr;
}

std::string serialize_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                                  const Metadata& metadata) {
  return serialize(tensors, metadata, "serialize_safetensors");
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const Metadata& metadata) {
  write_file_atomically(path, serialize(tensors, metadata, "save_safetensors '" + path + "'"));
}

Safetensors parse_safetensors(std::string_view bytes, const std::string& name) {
  require_little_endian(name);
  FPI_CHECK(bytes.size() >= kLengthBytes, name, ": ", bytes.size(),
            " bytes is too short for a safetensors file, which starts with an 8-byte header length");
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < kLengthBytes; ++i)
    length |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  FPI_CHECK(length <= kMaxHeaderBytes, name, ": the header length ", length, " is over the format's limit of ",
            kMaxHeaderBytes, " bytes; this is not a safetensors file or it is damaged");
  FPI_CHECK(length <= bytes.size() - kLengthBytes, name, ": the header length ", length,
            " runs past the end of the file (", bytes.size(), " bytes); the file is truncated or damaged");
  const std::string_view header = bytes.substr(kLengthBytes, length);
  const std::string_view data = bytes.substr(kLengthBytes + length);

  const Json json = parse_header(header, name);
  FPI_CHECK(json.is_object(), name, ": the header is ", kind(json), ", not a JSON object");
  FPI_CHECK(header.front() == '{', name, ": the header starts with whitespace; the format requires '{' first");

  Safetensors out;
  std::vector<Incoming> entries;
  for (const auto& item : json.items()) {
    if (item.key() == kMetadataKey) {
      out.metadata = read_metadata(item.value(), name);
    } else {
      entries.push_back(read_entry(item.key(), item.value(), data.size(), name));
    }
  }
  std::stable_sort(entries.begin(), entries.end(), [](const Incoming& a, const Incoming& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  check_tiling(entries, data.size(), name);

  for (const Incoming& in : entries) {
    Tensor tensor = empty(in.shape, {.dtype = in.dtype});
    if (in.end > in.begin) std::memcpy(tensor.raw_data(), data.data() + in.begin, in.end - in.begin);
    out.tensors.emplace_back(in.name, std::move(tensor));
  }
  return out;
}

Safetensors load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

}  // namespace fpi::io
