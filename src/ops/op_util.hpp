// Helpers shared by the op families: argument checks, and the unrecorded views and outputs that ops
// build their results from (views come from the tensor layer, src/raw_tensor.hpp).
#pragma once

#include "backend/backend.hpp"
#include "fpi/ops.hpp"
#include "raw_tensor.hpp"

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

using detail::broadcast_view;
using detail::raw_view;

inline Tensor empty_as(const Shape& shape, const Tensor& like) { return empty(shape, like.options()); }

}  // namespace fpi::ops
