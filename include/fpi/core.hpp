// Core vocabulary shared by every layer of fpi: the error type, dtypes, devices and shapes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fpi {

// Every error fpi reports to a caller is an fpi::Error whose message names the operation and the
// offending values, so a user can act on it without reading the source.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(detail::concat(parts...));
}

#define FPI_CHECK(cond, ...)                    \
  do {                                          \
    if (!(cond)) ::fpi::fail(__VA_ARGS__);      \
  } while (0)

enum class DType : std::uint8_t { Float32, Float64 };

constexpr std::size_t dtype_size(DType t) { return t == DType::Float32 ? 4 : 8; }
const char* dtype_name(DType t);

enum class DeviceKind : std::uint8_t { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool is_cuda() const { return kind == DeviceKind::CUDA; }
  std::string str() const;
  friend bool operator==(const Device&, const Device&) = default;
};

inline constexpr Device kCPU{};
inline Device cuda(int index = 0) { return Device{DeviceKind::CUDA, index}; }
std::ostream& operator<<(std::ostream& out, const Device& d);
std::ostream& operator<<(std::ostream& out, DType t);

using Shape = std::vector<std::int64_t>;

std::string shape_str(const Shape& shape);
std::int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

// Wraps a possibly negative dimension index (Python style) and checks it against `ndim`.
std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op);

// NumPy broadcasting of two shapes; throws naming `op` when they are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace fpi
