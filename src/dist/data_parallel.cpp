// Parameter broadcast, gradient averaging and the drift check of data-parallel training
// (fpi/dist/data_parallel.hpp). Tensors on a GPU go through the CPU: the MPI communicator reduces host
// buffers.
#include "fpi/dist/data_parallel.hpp"

#include <algorithm>

#include "fpi/grad_mode.hpp"

namespace fpi::dist {

void broadcast_parameters(Communicator& communicator, const std::vector<Tensor>& parameters) {
  if (communicator.size() == 1) return;
  NoGrad no_grad;
  for (const Tensor& parameter : parameters) {
    const Tensor host = parameter.to(kCPU).contiguous().clone();
    communicator.broadcast(host);
    Tensor target = parameter;
    target.copy_(host.to(parameter.device()));
  }
}

void all_reduce_gradients(Communicator& communicator, const std::vector<Tensor>& parameters,
                          std::int64_t local_count, std::int64_t global_count, std::span<double> extras) {
  FPI_CHECK(global_count > 0 && local_count >= 0 && local_count <= global_count,
            "dist::all_reduce_gradients: ", local_count, " of ", global_count, " samples");
  NoGrad no_grad;
  std::size_t total = 0;
  for (const Tensor& parameter : parameters) total += static_cast<std::size_t>(parameter.numel());
  // [gradients..., one "has a gradient" count per parameter, extras...]
  std::vector<double> buffer(total + parameters.size() + extras.size(), 0.0);
  const double scale = static_cast<double>(local_count) / static_cast<double>(global_count);
  std::size_t offset = 0;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const Tensor grad = parameters[i].grad();
    if (grad.defined()) {
      const std::vector<double> values = grad.to(kCPU).to_vector<double>();
      for (std::size_t k = 0; k < values.size(); ++k) buffer[offset + k] = values[k] * scale;
      buffer[total + i] = 1.0;
    }
    offset += static_cast<std::size_t>(parameters[i].numel());
  }
  std::copy(extras.begin(), extras.end(), buffer.begin() + static_cast<std::ptrdiff_t>(total + parameters.size()));
  communicator.all_reduce(std::span<double>(buffer));
  offset = 0;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const Tensor& parameter = parameters[i];
    const auto n = static_cast<std::ptrdiff_t>(parameter.numel());
    if (buffer[total + i] > 0.0) {
      const std::vector<double> values(buffer.begin() + static_cast<std::ptrdiff_t>(offset),
                                       buffer.begin() + static_cast<std::ptrdiff_t>(offset) + n);
      parameter.set_grad(from_vector(values, parameter.shape(), {parameter.dtype(), parameter.device()}));
    }
    offset += static_cast<std::size_t>(n);
  }
  std::copy(buffer.begin() + static_cast<std::ptrdiff_t>(total + parameters.size()), buffer.end(), extras.begin());
}

std::uint64_t parameter_hash(const std::vector<Tensor>& parameters) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const Tensor& parameter : parameters) {
    const Tensor host = parameter.detach().to(kCPU).contiguous();
    const auto* bytes = static_cast<const unsigned char*>(host.raw_data());
    const std::size_t size = static_cast<std::size_t>(host.numel()) * dtype_size(host.dtype());
    for (std::size_t k = 0; k < size; ++k) hash = (hash ^ bytes[k]) * 1099511628211ull;
  }
  return hash;
}

void check_parameters_agree(Communicator& communicator, const std::vector<Tensor>& parameters,
                            const std::string& where) {
  if (communicator.size() == 1) return;
  const std::uint64_t mine = parameter_hash(parameters);
  std::uint64_t root = mine;
  communicator.broadcast(std::as_writable_bytes(std::span<std::uint64_t>(&root, 1)));
  // Every rank learns which ranks differ, so all of them stop together instead of waiting on each other.
  std::vector<double> differs(static_cast<std::size_t>(communicator.size()), 0.0);
  differs[static_cast<std::size_t>(communicator.rank())] = mine == root ? 0.0 : 1.0;
  communicator.all_reduce(std::span<double>(differs));
  std::string ranks;
  for (std::size_t r = 0; r < differs.size(); ++r)
    if (differs[r] > 0.0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
  FPI_CHECK(ranks.empty(), where, ": the parameters of rank(s) ", ranks,
            " differ from rank 0's (data-parallel ranks must stay identical; was the run started with different "
            "builds, thread counts or nondeterministic kernels?)");
}

}  // namespace fpi::dist
