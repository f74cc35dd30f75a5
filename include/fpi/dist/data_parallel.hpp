// What a data-parallel step does with the communicator: parameters made identical on every rank,
// gradients averaged as the single-process batch mean would have them, and a cheap check that the
// ranks' parameters have not drifted apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "fpi/dist/communicator.hpp"

namespace fpi::dist {

// Rank 0's parameter values copied into every rank's parameters (any device; in place).
void broadcast_parameters(Communicator& communicator, const std::vector<Tensor>& parameters);

// Turns each rank's gradient of its shard's mean loss into the gradient of the global batch's mean loss:
// each rank's gradient is scaled by local_count / global_count and the ranks' gradients are summed, so
// uneven shards and a short last batch weigh each sample once. A parameter without a gradient on a rank
// counts as zero there; it gets a gradient when any rank has one. `extras` (loss sums, counters) are
// summed in the same all-reduce, so a step needs one collective. The buffer is float64: the sum of N
// scaled float32 gradients is then rounded once, to the parameter's dtype.
void all_reduce_gradients(Communicator& communicator, const std::vector<Tensor>& parameters,
                          std::int64_t local_count, std::int64_t global_count, std::span<double> extras);

// The same averaging in buckets that overlap the backward. The parameters' gradients, last parameter
// first (the order the backward finishes them in), are laid end to end in one float64 buffer, which is
// cut into buckets of `bucket_bytes` (a large parameter spans several: no message is larger than a
// bucket). A bucket's non-blocking all-reduce starts as soon as every parameter it holds a part of has
// its final gradient (the autograd's leaf hook, gradient_ready), while the backward still computes the
// earlier layers' gradients. Buckets start strictly in order, so every rank starts the same collectives
// in the same order whatever order its gradients arrive in; one a rank has no gradients for starts in
// finish(). Each element is the same float64 sum of the same scaled terms as all_reduce_gradients
// makes, so the results are equal bit for bit.
//
//   GradientBuckets buckets(communicator, parameters, 4 << 20);
//   buckets.begin_step(local_count, global_count);
//   autograd::backward({loss}, {}, {}, false, [&](const Tensor& leaf) { buckets.gradient_ready(leaf); });
//   buckets.finish(extras);   // waits; every rank now holds the global batch's gradients
class GradientBuckets {
 public:
  GradientBuckets(Communicator& communicator, std::vector<Tensor> parameters, std::size_t bucket_bytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // Before a step's backward: this rank's and the global batch's sample counts.
  void begin_step(std::int64_t local_count, std::int64_t global_count);
  // `leaf`'s gradient is final for this step (a leaf that is not one of the parameters is ignored).
  // Packs it, starts every bucket that is complete and next in order, and lets the oldest one in flight
  // progress.
  void gradient_ready(const Tensor& leaf);
  // After the backward: starts the remaining buckets and one all-reduce of the "has a gradient" flags
  // and `extras` (summed, in place), waits for all of them and sets every parameter's gradient as
  // all_reduce_gradients does.
  void finish(std::span<double> extras);

  std::size_t bucket_count() const;
  // Of the last step: seconds spent in gradient_ready (packing, starting, progressing).
  double ready_seconds() const { return ready_seconds_; }

 private:
  struct Bucket;
  void start_ready_buckets();

  Communicator& communicator_;
  std::vector<Tensor> parameters_;
  std::vector<double> values_;  // every gradient, scaled, last parameter first
  std::vector<Bucket> buckets_;
  // Per parameter: its offset in values_, the buckets [first, last] it spans, whether this step packed
  // it and whether it had a gradient.
  std::vector<std::size_t> offset_of_, first_bucket_, last_bucket_;
  std::vector<char> packed_;
  std::vector<double> has_gradient_;
  std::unordered_map<const void*, std::size_t> index_;  // a parameter's TensorImpl -> its position
  std::size_t next_to_start_ = 0;
  double scale_ = 1.0;
  double ready_seconds_ = 0.0;
};

// FNV-1a over the bytes of every parameter, in order: equal on ranks whose parameters are bit-equal.
std::uint64_t parameter_hash(const std::vector<Tensor>& parameters);

// Compares parameter_hash over the ranks; throws on every rank, naming `where` and the ranks that differ
// from rank 0, when they are not all equal.
void check_parameters_agree(Communicator& communicator, const std::vector<Tensor>& parameters,
                            const std::string& where);

}  // namespace fpi::dist
