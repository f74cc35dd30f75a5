// Printing in the style of PyTorch's repr. It names the tensor's grad_fn, so it reads the tape's node
// type and sits above the tensor layer, with autograd.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>

#include "fpi/autograd.hpp"

namespace fpi {

namespace {

struct Format {
  enum Kind { Integral, Fixed, Scientific } kind = Fixed;
  int width = 0;
};

std::string format_value(double v, const Format& f) {
  char buf[64];
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  switch (f.kind) {
    case Format::Integral: std::snprintf(buf, sizeof buf, "%.0f.", v); break;
    case Format::Fixed: std::snprintf(buf, sizeof buf, "%.4f", v); break;
    case Format::Scientific: std::snprintf(buf, sizeof buf, "%.4e", v); break;
  }
  return buf;
}

Format choose_format(const std::vector<double>& values) {
  Format f;
  double max_abs = 0.0, min_abs = std::numeric_limits<double>::infinity();
  bool integral = true, any_finite = false;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    any_finite = true;
    integral = integral && v == std::nearbyint(v);
    max_abs = std::max(max_abs, std::abs(v));
    if (v != 0.0) min_abs = std::min(min_abs, std::abs(v));
  }
  if (any_finite && integral && max_abs < 1e8) {
    f.kind = Format::Integral;
  } else if (any_finite && (max_abs >= 1e8 || (min_abs < 1e-4 && max_abs / min_abs > 1e3))) {
    f.kind = Format::Scientific;
  }
  for (double v : values) f.width = std::max<int>(f.width, static_cast<int>(format_value(v, f).size()));
  return f;
}

constexpr std::int64_t kSummarizeAbove = 1000;
constexpr std::int64_t kEdgeItems = 3;

void print_level(std::ostream& out, const std::vector<double>& values, const Shape& shape, const Shape& strides,
                 std::size_t dim, std::int64_t offset, const Format& f, bool summarize, int indent) {
  const std::int64_t n = shape[dim];
  const auto visible = [&](std::int64_t i) { return !summarize || n <= 2 * kEdgeItems || i < kEdgeItems || i >= n - kEdgeItems; };
  out << '[';
  bool first = true, ellipsis_done = false;
  for (std::int64_t i = 0; i < n; ++i) {
    if (!visible(i)) {
      if (!ellipsis_done) {
        out << (dim + 1 == shape.size() ? ", ..." : ",\n" + std::string(indent + 1, ' ') + "...");
        ellipsis_done = true;
      }
      continue;
    }
    if (!first) {
      if (dim + 1 == shape.size()) {
        out << ", ";
      } else {
        out << ',' << std::string(shape.size() - dim - 1, '\n') << std::string(indent + 1, ' ');
      }
    }
    first = false;
    if (dim + 1 == shape.size()) {
      const std::string s = format_value(values[offset + i * strides[dim]], f);
      out << std::string(f.width - s.size(), ' ') << s;
    } else {
      print_level(out, values, shape, strides, dim + 1, offset + i * strides[dim], f, summarize, indent + 1);
    }
  }
  out << ']';
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  const std::vector<double> values = t.to_vector<double>();
  const Shape strides = contiguous_strides(t.shape());
  const bool summarize = t.numel() > kSummarizeAbove;
  std::vector<double> shown;
  if (summarize) {
    shown.reserve(64);
    for (std::size_t i = 0; i < values.size(); ++i)
      if (i < 64 || i + 64 >= values.size()) shown.push_back(values[i]);
  }
  const Format f = choose_format(summarize ? shown : values);
  out << "tensor(";
  if (t.dim() == 0) {
    out << format_value(values[0], f);
  } else if (t.numel() == 0) {
    out << "[]";
  } else {
    print_level(out, values, t.shape(), strides, 0, 0, f, summarize, 7);
  }
  if (t.numel() == 0 && t.dim() != 1) out << ", size=" << shape_str(t.shape());
  if (t.dtype() != DType::Float32) out << ", dtype=" << dtype_name(t.dtype());
  if (!t.device().is_cpu()) out << ", device='" << t.device().str() << "'";
  if (t.grad_fn()) {
    // "bce_with_logits" prints as BceWithLogitsBackward, after PyTorch's naming.
    std::string name;
    bool upper = true;
    for (char c : t.grad_fn()->name()) {
      if (c == '_') {
        upper = true;
        continue;
      }
      name += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    }
    out << ", grad_fn=<" << name << "Backward>";
  } else if (t.requires_grad()) {
    out << ", requires_grad=True";
  }
  return out << ')';
}

}  // namespace fpi
