// Losses, each reduced by the mean. Most are compositions of differentiable ops; bce has its own
// node because the composed gradient t/p is 0/0 = NaN where a sigmoid saturates to exactly 0 or 1.
#include <cmath>
#include <limits>

#include "ops/op_util.hpp"

namespace fpi {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();

void check_same_shape(const Tensor& input, const Tensor& target, const char* op) {
  ops::check_compatible(input, target, op);
  FPI_CHECK(input.shape() == target.shape(), op, ": input of shape ", shape_str(input.shape()),
            " and target of shape ", shape_str(target.shape()), " must have the same shape");
}
}  // namespace

// mean((input - target)²)
Tensor mse_loss(const Tensor& input, const Tensor& target) {
  check_same_shape(input, target, "mse_loss");
  return mean(square(input - target));
}

// -mean(t log p + (1 - t) log(1 - p)), each log clamped at -100;
// dp = g (p - t) / max(p (1 - p), 1e-12) / N,  dt = g (log(1 - p) - log p) / N
Tensor bce_loss(const Tensor& input, const Tensor& target) {
  check_same_shape(input, target, "bce_loss");
  FPI_CHECK(input.numel() > 0, "bce_loss: empty input");
  const auto clamped_log = [](const Tensor& x) { return clamp(log(x), -100.0, kInf); };
  Tensor loss;
  {
    NoGrad no_grad;
    loss = -mean(target * clamped_log(input) + rsub(target, 1.0) * clamped_log(rsub(input, 1.0)));
  }
  const double scale = 1.0 / static_cast<double>(input.numel());
  autograd::record("bce_loss", {input, target}, loss, {input, target},
                   [scale, clamped_log](const Tensor& g, const autograd::BackwardContext& ctx) {
                     const Tensor &p = ctx.saved(0), &t = ctx.saved(1);
                     Tensor gp, gt;
                     if (ctx.needs_grad(0)) gp = g * scale * ((p - t) / clamp(p * rsub(p, 1.0), 1e-12, kInf));
                     if (ctx.needs_grad(1)) gt = g * scale * (clamped_log(rsub(p, 1.0)) - clamped_log(p));
                     return Tensors{gp, gt};
                   });
  return loss;
}

// mean(softplus(x) - x t), which is the stable form of bce(sigmoid(x), t).
Tensor bce_with_logits_loss(const Tensor& logits, const Tensor& target) {
  check_same_shape(logits, target, "bce_with_logits_loss");
  return mean(softplus(logits) - logits * target);
}

Tensor cross_entropy_loss(const Tensor& logits, const Tensor& target) {
  ops::check_compatible(logits, target, "cross_entropy_loss");
  FPI_CHECK(logits.dim() == 2, "cross_entropy_loss: logits must be (N, C), got ", shape_str(logits.shape()));
  const std::int64_t n = logits.size(0), classes = logits.size(1);
  FPI_CHECK(n > 0, "cross_entropy_loss: empty batch");
  Tensor probabilities;
  if (target.dim() == 1) {
    FPI_CHECK(target.size(0) == n, "cross_entropy_loss: ", n, " rows of logits but ", target.size(0),
              " class indices");
    const auto indices = target.to_vector<double>();
    for (std::size_t i = 0; i < indices.size(); ++i) {
      const double c = indices[i];
      // The range comes first: converting NaN or a value beyond int64 to an integer is undefined.
      FPI_CHECK(c >= 0 && c < static_cast<double>(classes) && c == std::floor(c),
                "cross_entropy_loss: target[", i, "] = ", c, " is not a class index in [0, ", classes, ")");
    }
    const Tensor class_ids = arange(static_cast<double>(classes), logits.options()).unsqueeze(0);
    probabilities = eq(class_ids, target.detach().unsqueeze(1));
  } else {
    check_same_shape(logits, target, "cross_entropy_loss");
    probabilities = target;
  }
  return -sum(probabilities * log_softmax(logits, 1)) * (1.0 / static_cast<double>(n));
}

}  // namespace fpi
