// Unrecorded views and copies: the tensor layer's half of view construction. A view op in
// src/ops/shape.cpp checks its arguments, computes the new geometry and records itself on the tape;
// the handle it returns is built here, as are detach(), broadcasting and the host copies behind
// to_vector() and from_vector(). Nothing here touches the tape.
#pragma once

#include "backend/backend.hpp"
#include "fpi/tensor.hpp"

namespace fpi::detail {

// A new handle on a's storage with the given geometry.
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

// A new contiguous tensor holding a's values in `dtype` on `device`. A copy that leaves a GPU is the
// GPU backend's to make, so the source's backend copies whenever the target is the CPU.
inline Tensor raw_copy(const Tensor& a, DType dtype, Device device) {
  Tensor y = empty(a.shape(), {dtype, device});
  backend::backend_for(device.is_cpu() ? a.device() : device).copy(y, a);
  return y;
}

}  // namespace fpi::detail
