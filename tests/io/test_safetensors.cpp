// The safetensors reader and writer: bit-exact round trips of every kind of tensor and of metadata, the
// exact bytes the reference implementation writes, a table of damaged files with the message each one
// gets, and a checkpoint-shaped State through a file.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "fpi/io/file.hpp"
#include "fpi/io/safetensors.hpp"
#include "fpi/ops.hpp"
#include "fpi/state.hpp"
#include "io/temp_dir.hpp"
#include "test_util.hpp"

namespace fpi::io {
namespace {

using testing::error_of;
using testing::TempDir;
using Named = std::vector<std::pair<std::string, Tensor>>;

constexpr TensorOptions kF64{.dtype = kFloat64};

// The raw bytes of a tensor's values, so equality is bit equality (NaN payloads, -0.0 and all).
std::string bytes_of(const Tensor& t) {
  const Tensor host = t.detach().to(kCPU).contiguous();
  if (host.numel() == 0) return {};
  return std::string(static_cast<const char*>(host.raw_data()), host.numel() * dtype_size(host.dtype()));
}

void expect_identical(const Tensor& actual, const Tensor& expected, const std::string& what) {
  EXPECT_EQ(actual.shape(), expected.shape()) << what;
  EXPECT_EQ(actual.dtype(), expected.dtype()) << what;
  EXPECT_TRUE(actual.device().is_cpu()) << what;
  EXPECT_EQ(bytes_of(actual), bytes_of(expected)) << what;
}

// Values that a lossy or converting path would change: signed zero, infinities, a NaN with a payload,
// subnormals and the extremes.
template <class T>
std::vector<T> awkward_values(std::size_t n) {
  std::vector<T> values = {T(0),
                           -T(0),
                           std::numeric_limits<T>::infinity(),
                           -std::numeric_limits<T>::infinity(),
                           std::numeric_limits<T>::denorm_min(),
                           std::numeric_limits<T>::max(),
                           std::numeric_limits<T>::lowest(),
                           T(1) / T(3)};
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  values.push_back(std::bit_cast<T>(std::bit_cast<Bits>(std::numeric_limits<T>::quiet_NaN()) | Bits{0x5}));
  for (std::size_t i = values.size(); i < n; ++i) values.push_back(static_cast<T>(std::sin(double(i)) * 1e3));
  values.resize(n);
  return values;
}

// A file built by hand: the length, the header as given (no padding added) and the data.
std::string file_of(const std::string& header, const std::string& data = {}) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((std::uint64_t{header.size()} >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(Safetensors, RoundTripIsBitExactForEveryKindOfTensor) {
  const Named tensors = {
      {"f32.matrix", from_vector(awkward_values<float>(24), {2, 3, 4}, {})},
      {"f64.matrix", from_vector(awkward_values<double>(15), {3, 5}, kF64)},
      {"f32.scalar", from_vector(std::vector<float>{-1.5f}, Shape{}, {})},
      {"f64.scalar", from_vector(std::vector<double>{std::numbers::pi}, Shape{}, kF64)},
      {"f32.empty", zeros({3, 0, 2})},
      {"f64.empty", zeros({0}, kF64)},
      {"f32.vector", from_vector(awkward_values<float>(9))},
  };
  const Safetensors back = parse_safetensors(serialize_safetensors(tensors), "mem");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const Tensor* loaded = back.find(name);
    ASSERT_NE(loaded, nullptr) << name;
    expect_identical(*loaded, tensor, name);
  }
  EXPECT_EQ(back.find("missing"), nullptr);
  EXPECT_TRUE(back.metadata.empty());
}

// The data order is the reference's: F64 before F32, by name within a dtype; reading gives that order.
TEST(Safetensors, TensorsComeBackInDataOrder) {
  const Named tensors = {{"b", zeros({1})}, {"z", zeros({1}, kF64)}, {"a", zeros({2})}, {"c", zeros({0}, kF64)}};
  std::vector<std::string> names;
  for (const auto& [name, tensor] : parse_safetensors(serialize_safetensors(tensors), "mem").tensors)
    names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"c", "z", "a", "b"}));
}

TEST(Safetensors, NonContiguousAndGradTensorsAreSavedByValue) {
  const Tensor base = from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3}, kF64);
  Tensor weight = from_vector(std::vector<float>{0.25f, -4.0f});
  weight.requires_grad_();
  const Safetensors back =
      parse_safetensors(serialize_safetensors({{"t", base.t()}, {"slice", base.select(1, 2)}, {"w", weight}}), "mem");
  EXPECT_EQ(back.find("t")->to_vector<double>(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(back.find("t")->shape(), (Shape{3, 2}));
  EXPECT_EQ(back.find("slice")->to_vector<double>(), (std::vector<double>{3, 6}));
  EXPECT_EQ(back.find("w")->to_vector<float>(), (std::vector<float>{0.25f, -4.0f}));
  EXPECT_FALSE(back.find("w")->requires_grad());
}

TEST(Safetensors, MetadataRoundTripsWithOddCharacters) {
  const Metadata metadata = {{"config", "{\"name\": \"run\",\n\t\"lr\": 1e-3}"},
                             {"quote\"key\\", "back\\slash / slash"},
                             {"unicode", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\xa5"},
                             {"control", std::string("a\x01" "b\x1f", 4)},
                             {"empty", ""},
                             {"__metadata__", "a key like the header's own"}};
  const Safetensors back = parse_safetensors(serialize_safetensors({{"w", ones({2})}}, metadata), "mem");
  EXPECT_EQ(back.metadata, metadata);
  ASSERT_EQ(back.tensors.size(), 1u);
}

// What safetensors.torch.save({"b": torch.tensor([1., -2.]), "a": torch.tensor(0.5, dtype=torch.float64)},
// metadata={"format": "pt"}) writes: compact JSON, metadata first, F64 before F32, the header padded with
// spaces to 144 bytes (a multiple of 8), then the little-endian data.
TEST(Safetensors, BytesAreTheReferenceLayout) {
  const Named tensors = {{"b", from_vector(std::vector<float>{1.0f, -2.0f})},
                         {"a", from_vector(std::vector<double>{0.5}, Shape{}, kF64)}};
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})"
      "      ";
  ASSERT_EQ(header.size(), 144u);
  const std::string expected = std::string("\x90\0\0\0\0\0\0\0", 8) + header +
                               std::string("\0\0\0\0\0\0\xe0\x3f", 8) + std::string("\0\0\x80\x3f\0\0\0\xc0", 8);
  EXPECT_EQ(serialize_safetensors(tensors, {{"format", "pt"}}), expected);
  EXPECT_EQ(serialize_safetensors({}), file_of("{}      "));
}

TEST(Safetensors, ReaderAcceptsWhatOtherWritersMayDo) {
  // Entries in any order, an unpadded header, trailing whitespace, and empty tensors sharing an offset.
  const std::string data("\0\0\x80\x3f\0\0\0\x40", 8);
  const Safetensors back = parse_safetensors(
      file_of(R"({"y":{"data_offsets":[4,8],"shape":[1],"dtype":"F32"},"e2":{"dtype":"F64","shape":[0,5],)"
              R"("data_offsets":[4,4]},"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
              R"("e1":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}  )" "\n",
              data),
      "mem");
  std::vector<std::string> names;
  for (const auto& [name, tensor] : back.tensors) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"x", "e2", "e1", "y"}));
  EXPECT_EQ(back.find("x")->item(), 1.0);
  EXPECT_EQ(back.find("y")->to_vector<float>(), std::vector<float>{2.0f});
  EXPECT_EQ(back.find("e2")->shape(), (Shape{0, 5}));
  EXPECT_EQ(back.find("e2")->dtype(), kFloat64);
}

struct Corrupt {
  const char* what;
  std::string bytes;
  std::string message;  // the error after "bad.st: "
};

std::string with_length(std::uint64_t length, const std::string& rest) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((length >> (8 * i)) & 0xff);
  return out + rest;
}

TEST(Safetensors, CorruptFilesAreRejectedWithWhatIsWrong) {
  const std::string four(4, '\0'), eight(8, '\0'), twelve(12, '\0');
  const std::vector<Corrupt> cases = {
      {"shorter than the length", "abc",
       "3 bytes is too short for a safetensors file, which starts with an 8-byte header length"},
      {"length past the end", with_length(100, "{}"),
       "the header length 100 runs past the end of the file (10 bytes); the file is truncated or damaged"},
      {"absurd length", with_length(200'000'000, "{}"),
       "the header length 200000000 is over the format's limit of 100000000 bytes; this is not a safetensors file "
       "or it is damaged"},
      {"empty header", file_of(""), "the header is not valid JSON: "},
      {"not JSON", file_of("{not json}"), "the header is not valid JSON: "},
      {"not an object", file_of("[1, 2]"), "the header is an array, not a JSON object"},
      {"leading whitespace", file_of(" {}"), "the header starts with whitespace; the format requires '{' first"},
      {"too deep", file_of(R"({"w":{"shape":[[1]]}})"), "the header nests deeper than a safetensors header"},
      {"entry not an object", file_of(R"({"w":[1]})"),
       "tensor 'w' is an array, not an object with dtype, shape and data_offsets"},
      {"missing data_offsets", file_of(R"({"w":{"dtype":"F32","shape":[1]}})", four),
       "tensor 'w': the field data_offsets is missing"},
      {"extra field", file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", four),
       "tensor 'w': unknown field 'x' (an entry has exactly dtype, shape and data_offsets)"},
      {"empty name", file_of(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four),
       "a tensor has an empty name"},
      {"unsupported dtype", file_of(R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", four),
       "tensor 'w': dtype BF16 is not supported (fpi reads F32 and F64)"},
      {"unknown dtype", file_of(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", four),
       "tensor 'w': unknown dtype 'F33' is not supported (fpi reads F32 and F64)"},
      {"dtype not a string", file_of(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", four),
       "tensor 'w': dtype is a number, not a string"},
      {"negative shape", file_of(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}})", four),
       "tensor 'w': shape[1] is -1; it cannot be negative"},
      {"fractional shape", file_of(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four),
       "tensor 'w': shape[0] is 1.5, not a non-negative integer"},
      {"shape overflow", file_of(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", four),
       "tensor 'w': shape [4294967296, 4294967296] has more elements than a 64-bit count can hold"},
      {"overflow hidden by a zero", file_of(R"({"w":{"dtype":"F32","shape":[0,4294967296,4294967296],)"
                                            R"("data_offsets":[0,0]}})"),
       "tensor 'w': shape [0, 4294967296, 4294967296] has more elements than a 64-bit count can hold"},
      {"size mismatch", file_of(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", eight),
       "tensor 'w': shape [2] of F64 needs 16 bytes, but data_offsets [0, 8] hold 8"},
      {"byte count overflow", file_of(R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}})",
                                      eight),
       "tensor 'w': shape [4611686018427387904] of F64 needs more than 2^64 bytes, but data_offsets [0, 8] hold 8"},
      {"offsets reversed", file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four),
       "tensor 'w': data_offsets [4, 0] end before they begin"},
      {"offsets not a pair", file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", four),
       "tensor 'w': data_offsets is an array of 3 values, not [begin, end]"},
      {"offset too large", file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})"),
       "tensor 'w': data_offsets[1] is 18446744073709551615, too large for a 64-bit signed size"},
      {"offsets out of range", file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[1000,1004]}})", four),
       "tensor 'w': data_offsets [1000, 1004] run past the end of the data section (4 bytes); the file is "
       "truncated or damaged"},
      {"truncated data", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", eight),
       "tensor 'b': data_offsets [4, 12] run past the end of the data section (8 bytes); the file is truncated or "
       "damaged"},
      {"overlap", file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "tensor 'b' (data_offsets [4, 8]) overlaps tensor 'a' (data_offsets [0, 8])"},
      {"empty tensor inside another", file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                              R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})", eight),
       "tensor 'e' (data_offsets [4, 4]) overlaps tensor 'a' (data_offsets [0, 8])"},
      {"hole", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", twelve),
       "the data section has a hole: bytes [4, 8] belong to no tensor (the next is 'b')"},
      {"bytes after the last tensor", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
       "the data section has a hole: bytes [4, 8] at its end belong to no tensor"},
      {"data without tensors", file_of("{}", four),
       "the data section has a hole: bytes [0, 4] at its end belong to no tensor"},
      {"duplicate tensor", file_of(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                   R"("w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four),
       "the header has the key 'w' twice"},
      {"duplicate field", file_of(R"({"w":{"dtype":"F64","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four),
       "'w' has the key 'dtype' twice"},
      {"duplicate metadata key", file_of(R"({"__metadata__":{"k":"a","k":"b"}})"),
       "'__metadata__' has the key 'k' twice"},
      {"metadata value not a string", file_of(R"({"__metadata__":{"epoch":3}})"),
       "__metadata__ 'epoch' is a number, not a string"},
      {"metadata not an object", file_of(R"({"__metadata__":"x"})"),
       "__metadata__ is a string, not an object of strings"},
      {"control character in a name",
       file_of(R"({"a\nb":{"dtype":"X","shape":[1],"data_offsets":[0,4]}})", four),
       "tensor 'a\\nb': unknown dtype 'X' is not supported (fpi reads F32 and F64)"},
  };
  for (const Corrupt& c : cases) {
    const std::string message = error_of([&] { parse_safetensors(c.bytes, "bad.st"); });
    EXPECT_TRUE(message.starts_with("bad.st: " + c.message)) << c.what << ":\n  got      " << message
                                                               << "\n  expected bad.st: " << c.message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << c.what << ": " << message;
  }
}

TEST(Safetensors, WriterRefusesWhatTheFormatCannotHold) {
  const Tensor t = zeros({1});
  EXPECT_EQ(error_of([&] { serialize_safetensors({{"w", t}, {"w", t}}); }),
            "serialize_safetensors: two tensors are called 'w'");
  EXPECT_EQ(error_of([&] { serialize_safetensors({{"", t}}); }), "serialize_safetensors: a tensor has an empty name");
  EXPECT_EQ(error_of([&] { serialize_safetensors({{"__metadata__", t}}); }),
            "serialize_safetensors: a tensor cannot be called __metadata__, the header's key for the metadata");
  EXPECT_EQ(error_of([&] { serialize_safetensors({{"w", Tensor()}}); }),
            "serialize_safetensors: tensor 'w' is undefined");
  EXPECT_EQ(error_of([&] { serialize_safetensors({{"bad\xff", t}}); }),
            "serialize_safetensors: tensor name 'bad\xef\xbf\xbd' is not valid UTF-8");
  EXPECT_EQ(error_of([&] { serialize_safetensors({}, {{"k", "a"}, {"k", "b"}}); }),
            "serialize_safetensors: metadata key 'k' appears twice");
  EXPECT_EQ(error_of([&] { serialize_safetensors({}, {{"k", "\xc3"}}); }),
            "serialize_safetensors: the value of metadata key '\xef\xbf\xbd' is not valid UTF-8");
}

TEST(Safetensors, SaveAndLoadGoThroughAFile) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const Named tensors = {{"fc1.weight", randn({4, 3})}, {"fc1.bias", randn({4})}};
  save_safetensors(path, tensors, {{"format", "pt"}});
  const Safetensors back = load_safetensors(path);
  for (const auto& [name, tensor] : tensors) expect_identical(*back.find(name), tensor, name);
  EXPECT_EQ(back.metadata, (Metadata{{"format", "pt"}}));
  EXPECT_EQ(read_file(path), serialize_safetensors(tensors, {{"format", "pt"}}));

  EXPECT_EQ(error_of([&] { load_safetensors(dir.file("none.safetensors")); }),
            "cannot open '" + dir.file("none.safetensors") + "': No such file or directory");
  EXPECT_EQ(error_of([&] { save_safetensors(path, {{"", tensors[0].second}}); }),
            "save_safetensors '" + path + "': a tensor has an empty name");
  const std::string bytes = read_file(path);
  write_file_atomically(path, bytes.substr(0, bytes.size() - 4));
  EXPECT_TRUE(error_of([&] { load_safetensors(path); }).starts_with(path + ": tensor 'fc1.weight': data_offsets"));
}

// A trainer's checkpoint: a State through flatten, a file and unflatten comes back value for value.
TEST(Safetensors, FlattenedStateSurvivesAFile) {
  State state;
  state.set("model.w", from_vector(std::vector<double>{0.1, -0.2}, kF64));
  state.set("optimizer.lr", 1e-3);
  state.set("optimizer.step", std::int64_t{42});
  state.set("loader.order", std::vector<std::int64_t>{3, 1, 2});
  state.set("optimizer.kind", std::string("Adam"));
  const FlatState flat = flatten(state);
  const Safetensors file = parse_safetensors(serialize_safetensors(flat.tensors, flat.metadata), "ckpt");
  const State back = unflatten({file.tensors, file.metadata});
  StateReader reader(back, "test");
  expect_identical(reader.get_tensor("model.w"), std::get<Tensor>(*state.find("model.w")), "model.w");
  EXPECT_EQ(reader.get_double("optimizer.lr"), 1e-3);
  EXPECT_EQ(reader.get_int64("optimizer.step"), 42);
  EXPECT_EQ(reader.get_int64_list("loader.order"), (std::vector<std::int64_t>{3, 1, 2}));
  EXPECT_EQ(reader.get_string("optimizer.kind"), "Adam");
  reader.check_all_read();
}

}  // namespace
}  // namespace fpi::io
