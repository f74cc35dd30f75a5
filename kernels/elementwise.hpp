// Launchers of the element-wise kernels (kernels/elementwise.cu): strided copy with dtype conversion,
// fill, unary and binary maps. Pointers are device addresses of each operand's first element; the
// geometry comes from src/backend/cuda/layout.hpp. Each launch is queued on the current device's
// default stream and returns at once. Instantiated for float and double.
#pragma once

#include "backend/op_codes.hpp"
#include "kernels/strided.hpp"

namespace fpi::backend::cuda {

template <class D, class S>
void launch_copy(const StridedArgs<2>& args, D* dst, const S* src);

template <class T>
void launch_fill(const StridedArgs<1>& args, T* dst, T value);

// dst = op(src; a, b), with the same meaning of a and b as Backend::unary.
template <class T>
void launch_unary(UnaryOp op, const StridedArgs<2>& args, T* dst, const T* src, T a, T b);

template <class T>
void launch_binary(BinaryOp op, const StridedArgs<3>& args, T* dst, const T* lhs, const T* rhs);

}  // namespace fpi::backend::cuda
