// Backend::copy on the CUDA backend, which ops call whenever either side is on a GPU. Within one
// device it is a kernel. Across the host and a device, or between devices, the bytes move with one
// cudaMemcpy(Peer) of a contiguous buffer; a strided or dtype-converting copy is staged through a
// contiguous temporary on whichever side can convert it (a kernel on the device, the CPU backend on
// the host), so a transfer is never more than one memcpy plus one conversion pass.
#include "backend/cpu/cpu_backend.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device.hpp"

namespace fpi::backend::cuda {
namespace {

std::size_t byte_size(const Tensor& t) { return static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype()); }

// `t` itself when it is dense, else a dense copy of it on the same device (of the same dtype).
Tensor dense(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), {t.dtype(), t.device()});
  if (t.device().is_cpu()) {
    cpu::cpu_backend().copy(out, t);
  } else {
    copy_within_device(out, t);
  }
  return out;
}

void upload(const Tensor& dst, const Tensor& src) {
  DeviceGuard guard(dst.device().index);
  const Tensor host = dense(src);
  count_host_wait(HostWait::Upload);
  if (dst.is_contiguous() && dst.dtype() == src.dtype()) {
    FPI_CUDA_CHECK(cudaMemcpy(dst.raw_data(), host.raw_data(), byte_size(host), cudaMemcpyHostToDevice));
    return;
  }
  const Tensor staging = empty(src.shape(), {src.dtype(), dst.device()});
  FPI_CUDA_CHECK(cudaMemcpy(staging.raw_data(), host.raw_data(), byte_size(host), cudaMemcpyHostToDevice));
  copy_within_device(dst, staging);
}

void download(const Tensor& dst, const Tensor& src) {
  DeviceGuard guard(src.device().index);
  Tensor device_side = src;
  if (!src.is_contiguous() || src.dtype() != dst.dtype()) {
    device_side = empty(src.shape(), {dst.dtype(), src.device()});
    copy_within_device(device_side, src);
  }
  const Tensor host = dst.is_contiguous() ? dst : empty(dst.shape(), {dst.dtype(), kCPU});
  count_host_wait(HostWait::Download);
  FPI_CUDA_CHECK(cudaMemcpy(host.raw_data(), device_side.raw_data(), byte_size(host), cudaMemcpyDeviceToHost));
  if (!host.is_same(dst)) cpu::cpu_backend().copy(dst, host);
}

// cudaMemcpyPeer is ordered after the work already queued on both devices and before the work
// queued after it, so the temporaries may go back to the allocators as soon as it is queued.
void between_devices(const Tensor& dst, const Tensor& src) {
  const int from = src.device().index, to = dst.device().index;
  Tensor source;
  {
    DeviceGuard guard(from);
    source = dense(src);
  }
  DeviceGuard guard(to);
  const Tensor target = dst.is_contiguous() && dst.dtype() == src.dtype()
                            ? dst
                            : empty(src.shape(), {src.dtype(), dst.device()});
  FPI_CUDA_CHECK(cudaMemcpyPeer(target.raw_data(), to, source.raw_data(), from, byte_size(source)));
  if (!target.is_same(dst)) copy_within_device(dst, target);
}

}  // namespace

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  const Device to = dst.device(), from = src.device();
  FPI_CHECK(to == device() || from == device(), "cuda copy: neither ", to.str(), " nor ", from.str(),
            " is this backend's device ", device().str());
  if (to == from) {
    DeviceGuard guard(index_);
    copy_within_device(dst, src);
  } else if (dst.numel() == 0) {
    return;
  } else if (from.is_cpu()) {
    upload(dst, src);
  } else if (to.is_cpu()) {
    download(dst, src);
  } else {
    between_devices(dst, src);
  }
}

}  // namespace fpi::backend::cuda
