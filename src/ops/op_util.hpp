// Helpers shared by the op families: argument checks and raw (unrecorded) views and outputs.
#pragma once

#include "backend/backend.hpp"
#include "fpi/ops.hpp"

namespace fpi::ops {

using backend::backend_of;

inline void check_defined(const Tensor& t, const char* op, const char* what) {
  FPI_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

// Binary ops need one dtype and one device: fpi never converts silently.
inline void check_compatible(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op, "the first operand");
  check_defined(b, op, "the second operand");
  FPI_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", dtype_name(a.dtype()), " ", shape_str(a.shape()),
            " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()), " (convert one with .to(dtype))");
  FPI_CHECK(a.device() == b.device(), op, ": device mismatch, ", a.device().str(), " ", shape_str(a.shape()), " vs ",
            b.device().str(), " ", shape_str(b.shape()), " (move one with .to(device))");
}

// A new handle on a's storage with the given geometry; not recorded on the tape.
inline Tensor raw_view(const Tensor& a, const Shape& shape, const Shape& strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = a.impl()->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = a.dtype();
  return Tensor(std::move(impl));
}

// a viewed with `shape` (a broadcast of a's shape): stride 0 along broadcast dimensions.
inline Tensor broadcast_view(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  const std::size_t lead = shape.size() - a.shape().size();
  Shape strides(shape.size(), 0);
  for (std::size_t i = 0; i < a.shape().size(); ++i)
    strides[lead + i] = a.shape()[i] == 1 && shape[lead + i] != 1 ? 0 : a.strides()[i];
  return raw_view(a, shape, strides, a.offset());
}

inline Tensor empty_as(const Shape& shape, const Tensor& like) { return empty(shape, like.options()); }

}  // namespace fpi::ops
