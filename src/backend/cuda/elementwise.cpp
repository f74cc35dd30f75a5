// CUDA element-wise primitives: fill, unary and binary maps, and copies between tensors of this
// device (any strides, dtype conversion). The kernels are in kernels/elementwise.cu; copies that
// involve the host or another device are in transfer.cpp.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"
#include "backend/cuda/layout.hpp"
#include "kernels/elementwise.hpp"

namespace fpi::backend::cuda {
namespace {

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}

void check_on(const Tensor& t, int index, const char* op) {
  FPI_CHECK(t.device() == fpi::cuda(index), "cuda ", op, ": an operand on ", t.device().str(),
            " was given to the backend of cuda:", index);
}

}  // namespace

void copy_within_device(const Tensor& dst, const Tensor& src) {
  const auto args = strided_args<2>(dst.shape(), {&dst.strides(), &src.strides()}, "copy");
  const bool dst_f32 = dst.dtype() == DType::Float32, src_f32 = src.dtype() == DType::Float32;
  if (dst_f32 && src_f32) {
    launch_copy(args, ptr<float>(dst), ptr<const float>(src));
  } else if (dst_f32) {
    launch_copy(args, ptr<float>(dst), ptr<const double>(src));
  } else if (src_f32) {
    launch_copy(args, ptr<double>(dst), ptr<const float>(src));
  } else {
    launch_copy(args, ptr<double>(dst), ptr<const double>(src));
  }
}

void CudaBackend::fill(const Tensor& dst, double value) {
  check_on(dst, index_, "fill");
  DeviceGuard guard(index_);
  const auto args = strided_args<1>(dst.shape(), {&dst.strides()}, "fill");
  if (dst.dtype() == DType::Float32) {
    launch_fill(args, ptr<float>(dst), static_cast<float>(value));
  } else {
    launch_fill(args, ptr<double>(dst), value);
  }
}

void CudaBackend::unary(UnaryOp op, const Tensor& dst, const Tensor& src, double a, double b) {
  check_on(dst, index_, "unary");
  check_on(src, index_, "unary");
  DeviceGuard guard(index_);
  const auto args = strided_args<2>(dst.shape(), {&dst.strides(), &src.strides()}, "unary");
  if (dst.dtype() == DType::Float32) {
    launch_unary(op, args, ptr<float>(dst), ptr<const float>(src), static_cast<float>(a), static_cast<float>(b));
  } else {
    launch_unary(op, args, ptr<double>(dst), ptr<const double>(src), a, b);
  }
}

void CudaBackend::binary(BinaryOp op, const Tensor& dst, const Tensor& lhs, const Tensor& rhs) {
  check_on(dst, index_, "binary");
  check_on(lhs, index_, "binary");
  check_on(rhs, index_, "binary");
  DeviceGuard guard(index_);
  const auto args = strided_args<3>(dst.shape(), {&dst.strides(), &lhs.strides(), &rhs.strides()}, "binary");
  if (dst.dtype() == DType::Float32) {
    launch_binary(op, args, ptr<float>(dst), ptr<const float>(lhs), ptr<const float>(rhs));
  } else {
    launch_binary(op, args, ptr<double>(dst), ptr<const double>(lhs), ptr<const double>(rhs));
  }
}

}  // namespace fpi::backend::cuda
