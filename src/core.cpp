// Core vocabulary: names and shape arithmetic.
#include "fpi/core.hpp"

#include <algorithm>

namespace fpi {

const char* dtype_name(DType t) { return t == DType::Float32 ? "float32" : "float64"; }

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

std::ostream& operator<<(std::ostream& out, const Device& d) { return out << d.str(); }
std::ostream& operator<<(std::ostream& out, DType t) { return out << dtype_name(t); }

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Sizes come from users (and from files), so a product of them may not fit 64 bits: an unchecked
// product wraps, and a tensor "of" 2^64 elements would get a few bytes of storage.
std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape)
    FPI_CHECK(!__builtin_mul_overflow(n, d, &n), "shape ", shape_str(shape),
              " has more elements than a 64-bit count can hold");
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    FPI_CHECK(!__builtin_mul_overflow(s, std::max<std::int64_t>(shape[i], 1), &s), "shape ", shape_str(shape),
              " has strides too large for 64 bits");
  }
  return strides;
}

std::int64_t wrap_dim(std::int64_t dim, std::int64_t ndim, const char* op) {
  const std::int64_t lo = ndim == 0 ? -1 : -ndim;
  const std::int64_t hi = ndim == 0 ? 0 : ndim - 1;
  FPI_CHECK(dim >= lo && dim <= hi, op, ": dimension ", dim, " is out of range for a tensor with ", ndim,
            " dimension(s) (expected ", lo, "..", hi, ")");
  return dim < 0 ? dim + std::max<std::int64_t>(ndim, 1) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    FPI_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
              " cannot be broadcast together (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace fpi
