// Runs a template lambda with T = float or double according to a runtime dtype.
#pragma once

#include "fpi/core.hpp"

namespace fpi::backend::cpu {

template <class F>
decltype(auto) dispatch(DType dtype, F&& f) {
  if (dtype == DType::Float32) return f.template operator()<float>();
  return f.template operator()<double>();
}

}  // namespace fpi::backend::cpu
