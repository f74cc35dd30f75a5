// Parameter broadcast, gradient averaging and the drift check of data-parallel training
// (fpi/dist/data_parallel.hpp). Tensors on a GPU go through the CPU: the MPI communicator reduces host
// buffers.
#include "fpi/dist/data_parallel.hpp"

#include <algorithm>
#include <chrono>

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

struct GradientBuckets::Bucket {
  std::size_t begin = 0, end = 0;  // its range of values_
  std::size_t parameters = 0;      // how many parameters hold a part of it
  std::size_t unpacked = 0;        // of those, how many this step has not packed yet
  std::unique_ptr<PendingReduce> pending;
};

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

GradientBuckets::GradientBuckets(Communicator& communicator, std::vector<Tensor> parameters, std::size_t bucket_bytes)
    : communicator_(communicator),
      parameters_(std::move(parameters)),
      offset_of_(parameters_.size()),
      first_bucket_(parameters_.size()),
      last_bucket_(parameters_.size()),
      packed_(parameters_.size(), 0),
      has_gradient_(parameters_.size(), 0.0) {
  // Last parameters first: the backward finishes the last layers' gradients first.
  std::size_t total = 0;
  for (std::size_t k = parameters_.size(); k-- > 0;) {
    offset_of_[k] = total;
    total += static_cast<std::size_t>(parameters_[k].numel());
  }
  values_.resize(total);
  const std::size_t per_bucket = std::max<std::size_t>(1, bucket_bytes / sizeof(double));
  for (std::size_t begin = 0; begin < total; begin += per_bucket) {
    buckets_.emplace_back();
    buckets_.back().begin = begin;
    buckets_.back().end = std::min(total, begin + per_bucket);
  }
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    index_.emplace(parameters_[k].impl(), k);
    const auto n = static_cast<std::size_t>(parameters_[k].numel());
    if (n == 0) continue;
    first_bucket_[k] = offset_of_[k] / per_bucket;
    last_bucket_[k] = (offset_of_[k] + n - 1) / per_bucket;
    for (std::size_t b = first_bucket_[k]; b <= last_bucket_[k]; ++b) buckets_[b].parameters += 1;
  }
}

GradientBuckets::~GradientBuckets() = default;

std::size_t GradientBuckets::bucket_count() const { return buckets_.size(); }

void GradientBuckets::begin_step(std::int64_t local_count, std::int64_t global_count) {
  FPI_CHECK(global_count > 0 && local_count >= 0 && local_count <= global_count,
            "dist::GradientBuckets: ", local_count, " of ", global_count, " samples");
  FPI_CHECK(next_to_start_ == 0, "dist::GradientBuckets: a step began before the last one finished");
  scale_ = static_cast<double>(local_count) / static_cast<double>(global_count);
  std::fill(values_.begin(), values_.end(), 0.0);
  std::fill(packed_.begin(), packed_.end(), 0);
  std::fill(has_gradient_.begin(), has_gradient_.end(), 0.0);
  for (Bucket& bucket : buckets_) bucket.unpacked = bucket.parameters;
  ready_seconds_ = 0.0;
}

void GradientBuckets::gradient_ready(const Tensor& leaf) {
  const auto start = Clock::now();
  const auto it = index_.find(leaf.impl());
  if (it == index_.end() || packed_[it->second]) return;
  const std::size_t k = it->second;
  const Tensor grad = parameters_[k].grad();
  if (grad.defined()) {
    NoGrad no_grad;
    const Tensor host = grad.to(kCPU).contiguous();
    double* out = values_.data() + offset_of_[k];
    const auto n = static_cast<std::size_t>(host.numel());
    if (host.dtype() == DType::Float32) {
      const float* in = host.data<float>();
      for (std::size_t e = 0; e < n; ++e) out[e] = static_cast<double>(in[e]) * scale_;
    } else {
      const double* in = host.data<double>();
      for (std::size_t e = 0; e < n; ++e) out[e] = in[e] * scale_;
    }
    has_gradient_[k] = 1.0;
  }
  packed_[k] = 1;
  if (parameters_[k].numel() > 0)
    for (std::size_t b = first_bucket_[k]; b <= last_bucket_[k]; ++b) buckets_[b].unpacked -= 1;
  start_ready_buckets();
  // Moves the oldest bucket in flight (and with it the library's progress engine).
  for (std::size_t b = 0; b < next_to_start_; ++b)
    if (buckets_[b].pending) {
      if (buckets_[b].pending->test()) buckets_[b].pending.reset();
      break;
    }
  ready_seconds_ += seconds_since(start);
}

void GradientBuckets::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() && buckets_[next_to_start_].unpacked == 0) {
    Bucket& bucket = buckets_[next_to_start_];
    bucket.pending =
        communicator_.start_all_reduce(std::span<double>(values_.data() + bucket.begin, bucket.end - bucket.begin));
    next_to_start_ += 1;
  }
}

void GradientBuckets::finish(std::span<double> extras) {
  NoGrad no_grad;
  // A parameter no gradient reached on this rank counts as zero here (its flag stays 0).
  for (Bucket& bucket : buckets_) bucket.unpacked = 0;
  start_ready_buckets();
  // [one "has a gradient" count per parameter, extras...]
  std::vector<double> tail(has_gradient_);
  tail.insert(tail.end(), extras.begin(), extras.end());
  communicator_.start_all_reduce(std::span<double>(tail))->wait();
  for (Bucket& bucket : buckets_) {
    if (bucket.pending) bucket.pending->wait();
    bucket.pending.reset();
  }
  for (std::size_t k = 0; k < parameters_.size(); ++k) {
    if (tail[k] <= 0.0) continue;
    const Tensor& parameter = parameters_[k];
    const auto begin = values_.begin() + static_cast<std::ptrdiff_t>(offset_of_[k]);
    const std::vector<double> values(begin, begin + static_cast<std::ptrdiff_t>(parameter.numel()));
    parameter.set_grad(from_vector(values, parameter.shape(), {parameter.dtype(), parameter.device()}));
  }
  std::copy(tail.begin() + static_cast<std::ptrdiff_t>(parameters_.size()), tail.end(), extras.begin());
  next_to_start_ = 0;
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
