// CPU convolution primitives (NCHW, contiguous) on the register tile of conv_tile.hpp.
//
// Each primitive is a matrix product whose reduction reads a "source" image:
//   - stride 1: a zero-padded copy of the image. Tap (c, i, j) of output position q is element
//     rows[c, i, j] + q, so the taps need no im2col matrix. Outputs are computed on a grid as wide as
//     a padded row and the grid's extra columns are dropped on store (1 in 41 at 40 wide).
//   - other strides: the image split into stride_h * stride_w phase planes (conv.hpp), in which
//     every tap is again an offset, so the source is about the image's size where im2col's was
//     kernel_h * kernel_w / (stride_h * stride_w) times it; or the image's im2col matrix.
//
//   forward          y[m, q] = sum_k w[m, k] src[k, q]          tiles: output channels x positions
//   backward data    stride 1: the forward of gy with the kernel transposed and rotated 180 degrees;
//                    phase split: per phase, the same with the taps that land on that phase, then
//                    the phases merged back into the image; im2col: col = w^T gy, then col2im
//   backward filter  gw[m, k] = sum_q src[k, q] gy[m, q]        tiles: taps x output channels, the
//                    channels in the vector so that the long sum over q stays in registers
//
// Work is a list of items (an image and a range of its positions) cut into one contiguous range per
// thread of the fpi pool. A thread builds the source of an image in its own scratch when it reaches
// it, so the source is still in its cache when the tiles read it and no batch-sized copy exists.
// OpenBLAS is not involved, so its threads never compete with the pool. The weight gradient is
// summed per thread and the sums are added in thread order, so results do not depend on scheduling.
#include <algorithm>
#include <vector>

#include "backend/cpu/conv.hpp"
#include "backend/cpu/conv_tile.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dispatch.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/strided_loop.hpp"

namespace fpi::backend::cpu {
namespace {

using conv::kLanes;
using conv::Tile;

// Multiply-adds below which a primitive runs on the calling thread alone.
constexpr std::int64_t kParallelWork = std::int64_t{1} << 20;

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }
// ceil(a / b) for b > 0 and a of either sign.
std::int64_t ceil_div_signed(std::int64_t a, std::int64_t b) { return a >= 0 ? ceil_div(a, b) : -(-a / b); }

bool unit_stride(const Conv2dDesc& d) { return d.stride_h == 1 && d.stride_w == 1; }

ConvSource current_source = ConvSource::Auto;

// How many whole strides the furthest tap lies beyond a phase plane's first row or column.
std::int64_t phase_reach(std::int64_t kernel, std::int64_t dilation, std::int64_t stride) {
  return dilation * (kernel - 1) / stride;
}

// Splits items [0, count) into contiguous ranges and calls body(thread, begin, end) once per thread
// of the pool, or once on this thread when `work` (multiply-adds) is too small to share.
template <class F>
void for_each_thread(std::int64_t count, std::int64_t work, F&& body) {
  const std::int64_t threads = work < kParallelWork ? 1 : std::min<std::int64_t>(num_threads(), count);
  if (threads <= 1) {
    body(0, 0, count);
    return;
  }
  parallel_for(0, threads, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t t = b; t < e; ++t) body(t, count * t / threads, count * (t + 1) / threads);
  });
}

// A stride-1 convolution as its padded source sees it: `channels` planes of h x w, placed at
// (pad_h, pad_w) in planes of out_h + reach_h rows; negative pads crop.
struct Shifted {
  std::int64_t channels, h, w, pad_h, pad_w, kernel_h, kernel_w, dilation_h, dilation_w, out_h, out_w;
  std::int64_t padded_h() const { return out_h + (kernel_h - 1) * dilation_h; }
  // Rows lie row_w() apart, which is also the width of the output grid. A row's right padding may
  // double as the next row's left padding, since a tap that reads past a row's end then lands on
  // the next row's zeros: that holds while the image ends before row_w() and the overrun stays
  // within the left padding. 41 rather than 42 for 40 wide with padding 1: 2.4% fewer positions.
  std::int64_t row_w() const {
    const std::int64_t full = out_w + (kernel_w - 1) * dilation_w;
    return std::clamp(std::max(w + pad_w, full - std::max<std::int64_t>(pad_w, 0)), out_w, full);
  }
};

enum class Source { Shifted, Phases, Im2col };

// How one image of an operand becomes a source, and where the reduction rows lie in it.
struct Plan {
  Source source = Source::Shifted;
  Shifted g{};     // the padded geometry, when shifted
  Conv2dDesc d{};  // the convolution, for phases and im2col
  std::int64_t plane_h = 0, plane_w = 0;  // a phase plane's rows and columns, when phases
  std::int64_t in_image = 0;      // elements of one operand image
  std::int64_t image_size = 0;    // elements of one source image
  std::int64_t scratch_size = 0;  // image_size plus slack: tiles read up to 4 vectors past the grid
                                  // and shifted taps a kernel width further; those results are dropped
  std::int64_t grid_w = 0, grid = 0;  // output positions per grid row and per image
  std::vector<std::int64_t> rows;     // where reduction row k starts
};

template <class T>
Plan shifted_plan(const Shifted& g) {
  Plan p;
  p.g = g;
  p.in_image = g.channels * g.h * g.w;
  const std::int64_t hp = g.padded_h(), wp = g.row_w();
  p.image_size = g.channels * hp * wp;
  p.scratch_size = p.image_size + 4 * kLanes<T> + (g.kernel_w - 1) * g.dilation_w;
  p.grid_w = wp;
  p.grid = g.out_h * wp;
  for (std::int64_t c = 0; c < g.channels; ++c)
    for (std::int64_t i = 0; i < g.kernel_h; ++i)
      for (std::int64_t j = 0; j < g.kernel_w; ++j)
        p.rows.push_back(c * hp * wp + i * g.dilation_h * wp + j * g.dilation_w);
  return p;
}

template <class T>
Plan im2col_plan(const Conv2dDesc& d) {
  Plan p;
  p.source = Source::Im2col;
  p.d = d;
  p.in_image = d.in_channels * d.in_h * d.in_w;
  p.grid_w = d.out_w;
  p.grid = d.out_h * d.out_w;
  const std::int64_t k_rows = d.in_channels * d.kernel_h * d.kernel_w;
  p.image_size = k_rows * p.grid;
  p.scratch_size = p.image_size + 4 * kLanes<T>;
  for (std::int64_t k = 0; k < k_rows; ++k) p.rows.push_back(k * p.grid);
  return p;
}

// Output position (oh, ow) reads tap (i, j) at row oh * stride + i * dilation - pad, which is row
// oh + (i * dilation) / stride of phase (i * dilation) % stride: the grid is a phase plane's width
// and a tap's row in the reduction is its phase plane plus that offset.
template <class T>
Plan phases_plan(const Conv2dDesc& d) {
  Plan p;
  p.source = Source::Phases;
  p.d = d;
  p.in_image = d.in_channels * d.in_h * d.in_w;
  const std::int64_t reach_w = phase_reach(d.kernel_w, d.dilation_w, d.stride_w);
  p.plane_h = d.out_h + phase_reach(d.kernel_h, d.dilation_h, d.stride_h);
  p.plane_w = d.out_w + reach_w;
  const std::int64_t plane = p.plane_h * p.plane_w;
  p.image_size = d.in_channels * d.stride_h * d.stride_w * plane;
  p.scratch_size = p.image_size + 4 * kLanes<T> + reach_w;
  p.grid_w = p.plane_w;
  p.grid = d.out_h * p.plane_w;
  for (std::int64_t c = 0; c < d.in_channels; ++c)
    for (std::int64_t i = 0; i < d.kernel_h; ++i)
      for (std::int64_t j = 0; j < d.kernel_w; ++j) {
        const std::int64_t row = i * d.dilation_h, col = j * d.dilation_w;
        const std::int64_t phase = (c * d.stride_h + row % d.stride_h) * d.stride_w + col % d.stride_w;
        p.rows.push_back(phase * plane + row / d.stride_h * p.plane_w + col / d.stride_w);
      }
  return p;
}

template <class T>
Plan forward_plan(const Conv2dDesc& d) {
  if (!unit_stride(d)) return current_source == ConvSource::Im2col ? im2col_plan<T>(d) : phases_plan<T>(d);
  return shifted_plan<T>({d.in_channels, d.in_h, d.in_w, d.pad_h, d.pad_w, d.kernel_h, d.kernel_w, d.dilation_h,
                          d.dilation_w, d.out_h, d.out_w});
}

// Rows are written in one pass with a select rather than fill/copy/fill: at 40 elements a row, the
// library calls those become cost more than the copy.
template <class T>
void pad_image(const Shifted& g, const T* src, T* dst) {
  const std::int64_t hp = g.padded_h(), wp = g.row_w(), h = g.h, w = g.w, pad_h = g.pad_h, pad_w = g.pad_w;
  const std::int64_t c0 = std::clamp<std::int64_t>(pad_w, 0, wp), c1 = std::clamp<std::int64_t>(pad_w + w, 0, wp);
  for (std::int64_t plane = 0; plane < g.channels; ++plane) {
    for (std::int64_t r = 0; r < hp; ++r, dst += wp) {
      const std::int64_t sr = r - pad_h;
      if (sr < 0 || sr >= h) {
        for (std::int64_t c = 0; c < wp; ++c) dst[c] = T(0);
        continue;
      }
      const T* in = src + (plane * h + sr) * w;
      for (std::int64_t c = 0; c < wp; ++c) dst[c] = c >= c0 && c < c1 ? in[c - pad_w] : T(0);
    }
  }
}

// col[(c, i, j), (oh, ow)] = x[c, oh*stride - pad + i*dilation, ow*stride - pad + j*dilation], 0 outside.
template <class T>
void im2col(const Conv2dDesc& d, const T* x, T* col) {
  for (std::int64_t c = 0; c < d.in_channels; ++c)
    for (std::int64_t i = 0; i < d.kernel_h; ++i)
      for (std::int64_t j = 0; j < d.kernel_w; ++j)
        for (std::int64_t oh = 0; oh < d.out_h; ++oh) {
          const std::int64_t h = oh * d.stride_h - d.pad_h + i * d.dilation_h;
          for (std::int64_t ow = 0; ow < d.out_w; ++ow, ++col) {
            const std::int64_t w = ow * d.stride_w - d.pad_w + j * d.dilation_w;
            *col = h >= 0 && h < d.in_h && w >= 0 && w < d.in_w ? x[(c * d.in_h + h) * d.in_w + w] : T(0);
          }
        }
}

// dst[c, a, b][r, t] = x[c, r * stride_h + a - pad_h, t * stride_w + b - pad_w], 0 outside the image.
template <class T>
void split_phases(const Plan& p, const T* x, T* dst) {
  const Conv2dDesc& d = p.d;
  for (std::int64_t c = 0; c < d.in_channels; ++c)
    for (std::int64_t a = 0; a < d.stride_h; ++a)
      for (std::int64_t b = 0; b < d.stride_w; ++b) {
        // Columns t0 <= t < t1 lie inside the image; the loop over them has no test, so that at
        // stride 2 (a constant there) it compiles to vector loads and a permute. Found once per
        // phase: two divisions per row cost about as much as the copy of a 33-wide row.
        const std::int64_t shift = b - d.pad_w;
        const std::int64_t t0 = std::clamp<std::int64_t>(ceil_div_signed(-shift, d.stride_w), 0, p.plane_w);
        const std::int64_t t1 = std::clamp<std::int64_t>(ceil_div_signed(d.in_w - shift, d.stride_w), t0, p.plane_w);
        for (std::int64_t r = 0; r < p.plane_h; ++r, dst += p.plane_w) {
          const std::int64_t h = r * d.stride_h + a - d.pad_h;
          if (h < 0 || h >= d.in_h) {
            for (std::int64_t t = 0; t < p.plane_w; ++t) dst[t] = T(0);
            continue;
          }
          const T* in = x + (c * d.in_h + h) * d.in_w;
          std::fill(dst, dst + t0, T(0));
          if (d.stride_w == 2)
            for (std::int64_t t = t0; t < t1; ++t) dst[t] = in[2 * t + shift];
          else
            for (std::int64_t t = t0; t < t1; ++t) dst[t] = in[t * d.stride_w + shift];
          std::fill(dst + t1, dst + p.plane_w, T(0));
        }
      }
}

// The adjoint of split_phases for one image (padding not negative): each pixel takes the value of
// the one phase position that holds it, or 0 where none does (the convolution never reads it).
template <class T>
void merge_phases(const Plan& p, const T* src, T* x) {
  const Conv2dDesc& d = p.d;
  const std::int64_t plane = p.plane_h * p.plane_w;
  for (std::int64_t c = 0; c < d.in_channels; ++c)
    for (std::int64_t h = 0; h < d.in_h; ++h, x += d.in_w) {
      const std::int64_t r = (h + d.pad_h) / d.stride_h, a = (h + d.pad_h) % d.stride_h;
      if (r >= p.plane_h) {
        std::fill(x, x + d.in_w, T(0));
        continue;
      }
      const T* rows = src + (c * d.stride_h + a) * d.stride_w * plane + r * p.plane_w;
      // At stride 2 pixel w is column (w + pad) / 2 of phase (w + pad) % 2; with every column in the
      // planes, the pairs of pixels interleave the two phase rows in a loop without tests, which
      // vectorises, where the loop below stores one pixel at a time behind a test.
      if (d.stride_w == 2 && (d.in_w - 1 + d.pad_w) / 2 < p.plane_w) {
        // Pairs start where w + pad is even: phase 0 then phase 1, at column (w + pad) / 2.
        const T *even = rows, *odd = rows + plane;
        std::int64_t w = d.pad_w % 2;
        const std::int64_t first = (w + d.pad_w) / 2, pairs = (d.in_w - w) / 2;
        if (w == 1) x[0] = odd[d.pad_w / 2];
        T* pair = x + w;
        for (std::int64_t u = 0; u < pairs; ++u) {
          pair[2 * u] = even[first + u];
          pair[2 * u + 1] = odd[first + u];
        }
        w += 2 * pairs;
        if (w < d.in_w) x[w] = even[first + pairs];
        continue;
      }
      std::fill(x, x + d.in_w, T(0));
      for (std::int64_t b = 0; b < d.stride_w; ++b) {
        const T* row = rows + b * plane;
        for (std::int64_t t = 0; t < p.plane_w; ++t) {
          const std::int64_t w = t * d.stride_w + b - d.pad_w;
          if (w >= 0 && w < d.in_w) x[w] = row[t];
        }
      }
    }
}

template <class T>
void fill_source(const Plan& p, const T* image, T* dst) {
  switch (p.source) {
    case Source::Shifted: pad_image(p.g, image, dst); break;
    case Source::Phases: split_phases(p, image, dst); break;
    case Source::Im2col: im2col(p.d, image, dst); break;
  }
  std::fill(dst + p.image_size, dst + p.scratch_size, T(0));
}

// The adjoint of im2col for one image: x = sum of col over the positions each element feeds.
template <class T>
void col2im(const Conv2dDesc& d, const T* col, T* x) {
  std::fill(x, x + d.in_channels * d.in_h * d.in_w, T(0));
  for (std::int64_t c = 0; c < d.in_channels; ++c)
    for (std::int64_t i = 0; i < d.kernel_h; ++i)
      for (std::int64_t j = 0; j < d.kernel_w; ++j)
        for (std::int64_t oh = 0; oh < d.out_h; ++oh) {
          const std::int64_t h = oh * d.stride_h - d.pad_h + i * d.dilation_h;
          for (std::int64_t ow = 0; ow < d.out_w; ++ow, ++col) {
            const std::int64_t w = ow * d.stride_w - d.pad_w + j * d.dilation_w;
            if (h >= 0 && h < d.in_h && w >= 0 && w < d.in_w) x[(c * d.in_h + h) * d.in_w + w] += *col;
          }
        }
}

// Writes rows [m0, m0 + MR) ∩ [0, rows) of a tile that covers grid positions q0.. into NCHW planes
// of `plane` elements, out_w wide, dropping the grid's extra columns and positions past its end. A
// vector that crosses the end of a grid row is cut into runs of lanes, found once for all rows.
template <class TileT, class T>
void store_on_grid(const TileT& tile, std::int64_t m0, std::int64_t rows, std::int64_t q0, const Plan& p, T* out,
                   std::int64_t out_w, std::int64_t plane) {
  const std::int64_t live_rows = std::min<std::int64_t>(TileT::rows, rows - m0);
  for (int j = 0; j < TileT::vectors; ++j) {
    const std::int64_t q = q0 + j * kLanes<T>;
    if (q >= p.grid) return;
    const std::int64_t oh = q / p.grid_w, ow = q % p.grid_w;
    if (ow + kLanes<T> <= out_w) {
      for (std::int64_t m = 0; m < live_rows; ++m)
        conv::store(out + (m0 + m) * plane + oh * out_w + ow, tile.acc[m][j]);
      continue;
    }
    struct Run {
      int first, last;
      std::int64_t offset;  // lane l goes to plane index offset + l
    } runs[kLanes<T>];
    int count = 0;
    for (std::int64_t l = 0; l < kLanes<T> && q + l < p.grid;) {
      const std::int64_t r = (q + l) / p.grid_w, c = (q + l) % p.grid_w;
      if (c >= out_w) {
        l += p.grid_w - c;
        continue;
      }
      const std::int64_t length = std::min({kLanes<T> - l, out_w - c, p.grid - q - l});
      runs[count++] = {static_cast<int>(l), static_cast<int>(l + length), r * out_w + c - l};
      l += length;
    }
    for (std::int64_t m = 0; m < live_rows; ++m)
      for (int i = 0; i < count; ++i)
        conv::store_lanes(out + (m0 + m) * plane, runs[i].offset, tile.acc[m][j], runs[i].first, runs[i].last);
  }
}

// out[n, m, oh, ow] = sum_k a[m, k] src_n[rows[k] + oh * grid_w + ow] for m < rows, with src_n the
// source of input image n; the items are (image, tile of grid positions).
template <class TileT, class T>
void grid_product(const Plan& p, const T* input, std::int64_t images, const T* a, std::int64_t rows, T* out,
                  std::int64_t out_w, const TensorOptions& options) {
  const std::int64_t depth = static_cast<std::int64_t>(p.rows.size());
  const std::int64_t plane = p.grid / p.grid_w * out_w, tiles = ceil_div(p.grid, TileT::width);
  // Rows past the last repeat it, so every tile is full; the store drops them.
  std::vector<std::int64_t> a_rows(round_up(rows, TileT::rows));
  for (std::size_t m = 0; m < a_rows.size(); ++m) a_rows[m] = std::min<std::int64_t>(m, rows - 1) * depth;
  Tensor scratch = empty({num_threads() * p.scratch_size}, options);
  const auto work = [&](std::int64_t t, std::int64_t b, std::int64_t e) {
    T* src = static_cast<T*>(scratch.raw_data()) + t * p.scratch_size;
    TileT tile;
    for (std::int64_t item = b, filled = -1; item < e; ++item) {
      const std::int64_t n = item / tiles, q0 = item % tiles * TileT::width;
      if (n != filled) fill_source(p, input + n * p.in_image, src), filled = n;
      for (std::int64_t m0 = 0; m0 < rows; m0 += TileT::rows) {
        tile.zero();
        tile.multiply(depth, a, a_rows.data() + m0, src + q0, p.rows.data());
        store_on_grid(tile, m0, rows, q0, p, out + n * rows * plane, out_w, plane);
      }
    }
  };
  for_each_thread(images * tiles, images * rows * depth * p.grid, work);
}

// Tall tiles of three vectors for many output rows; for one to three rows (a net's last layer), one
// row per tile, so no work is spent on rows that are dropped.
template <class T>
void grid_product(const Plan& p, const T* input, std::int64_t images, const T* a, std::int64_t rows, T* out,
                  std::int64_t out_w, const TensorOptions& options) {
  if (rows >= 4)
    grid_product<conv::TallTile<T, 3>>(p, input, images, a, rows, out, out_w, options);
  else
    grid_product<Tile<T, 1, 4>>(p, input, images, a, rows, out, out_w, options);
}

template <class T>
void forward(const T* x, const T* w, T* y, const Conv2dDesc& d, const TensorOptions& options) {
  grid_product(forward_plan<T>(d), x, d.batch, w, d.out_channels, y, d.out_w, options);
}

// The phase split's input gradient multiplies stride_h * stride_w * reach_h * reach_w taps per channel
// pair where the kernel has kernel_h * kernel_w (the rest are zeros: 16 for 9 at 3x3 stride 2, none
// at 4x4 stride 2). With 16 for 9, tools/bench/conv_layers.cpp measured the phases 1.8-4x faster than
// im2col and col2im's scattered scalar adds on the optical-flow net's 3x3 layers; kMaxPhaseWaste
// allows a little more than that, and beyond it (1x1 or 2x2 kernels at stride 3) im2col stays.
constexpr double kMaxPhaseWaste = 2.0;

bool use_phases_for_data(const Conv2dDesc& d) {
  if (current_source == ConvSource::Im2col || d.pad_h < 0 || d.pad_w < 0) return false;
  if (current_source == ConvSource::PhaseSplit) return true;
  const double taps = static_cast<double>((phase_reach(d.kernel_h, d.dilation_h, d.stride_h) + 1) *
                                          (phase_reach(d.kernel_w, d.dilation_w, d.stride_w) + 1) * d.stride_h *
                                          d.stride_w);
  return taps <= kMaxPhaseWaste * static_cast<double>(d.kernel_h * d.kernel_w);
}

// gx at phase (a, b), position (r, t), sums w[m, c, i, j] gy[m, r - i', t - j'] over the taps whose
// offset (i * dil_h, j * dil_w) is (i' * stride_h + a, j' * stride_w + b): a stride-1 convolution of
// gy padded by reach - 1 with those taps rotated 180 degrees, computed for all phases in one product
// (rows: input channel and phase; zeros where a phase has no tap), then merged into the image.
template <class T>
void backward_data_phases(const T* gy, const T* w, T* gx, const Conv2dDesc& d, const TensorOptions& options) {
  const Plan phases = phases_plan<T>(d);
  const std::int64_t reach_h = phase_reach(d.kernel_h, d.dilation_h, d.stride_h) + 1;
  const std::int64_t reach_w = phase_reach(d.kernel_w, d.dilation_w, d.stride_w) + 1;
  const std::int64_t phase_rows = d.in_channels * d.stride_h * d.stride_w, depth = d.out_channels * reach_h * reach_w;
  Tensor flipped = zeros({phase_rows * depth}, options);
  T* f = static_cast<T*>(flipped.raw_data());
  for (std::int64_t m = 0; m < d.out_channels; ++m)
    for (std::int64_t c = 0; c < d.in_channels; ++c)
      for (std::int64_t i = 0; i < d.kernel_h; ++i)
        for (std::int64_t j = 0; j < d.kernel_w; ++j) {
          const std::int64_t row = i * d.dilation_h, col = j * d.dilation_w;
          const std::int64_t phase = (c * d.stride_h + row % d.stride_h) * d.stride_w + col % d.stride_w;
          const std::int64_t tap_h = reach_h - 1 - row / d.stride_h, tap_w = reach_w - 1 - col / d.stride_w;
          const std::int64_t tap = (m * reach_h + tap_h) * reach_w + tap_w;
          f[phase * depth + tap] = w[((m * d.in_channels + c) * d.kernel_h + i) * d.kernel_w + j];
        }
  const Plan p = shifted_plan<T>({d.out_channels, d.out_h, d.out_w, reach_h - 1, reach_w - 1, reach_h, reach_w, 1, 1,
                                  phases.plane_h, phases.plane_w});
  const std::int64_t image = phase_rows * phases.plane_h * phases.plane_w, in_image = d.in_channels * d.in_h * d.in_w;
  Tensor planes = empty({d.batch * image}, options);
  T* g = static_cast<T*>(planes.raw_data());
  grid_product(p, gy, d.batch, f, phase_rows, g, phases.plane_w, options);
  // A copy, shared between threads from the element-wise maps' size on (it counts no multiply-adds).
  parallel_for(0, d.batch, std::max<std::int64_t>(1, kParallelGrain / image), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t n = b; n < e; ++n) merge_phases(phases, g + n * image, gx + n * in_image);
  });
}

template <class T>
void backward_data(const T* gy, const T* w, T* gx, const Conv2dDesc& d, const TensorOptions& options) {
  const std::int64_t taps = d.kernel_h * d.kernel_w, k_rows = d.in_channels * taps;
  if (unit_stride(d)) {
    // gx[c, h, w] = sum_{m,i,j} w[m, c, i, j] gy[m, h + pad - i dil, w + pad - j dil]: a stride-1
    // convolution of gy padded by dil (k - 1) - pad with flipped[c, m, i', j'] = w[m, c, kh-1-i', kw-1-j'].
    Tensor flipped = empty({d.in_channels * d.out_channels * taps}, options);
    T* f = static_cast<T*>(flipped.raw_data());
    for (std::int64_t c = 0; c < d.in_channels; ++c)
      for (std::int64_t m = 0; m < d.out_channels; ++m)
        for (std::int64_t t = 0; t < taps; ++t)
          f[(c * d.out_channels + m) * taps + t] = w[(m * d.in_channels + c) * taps + taps - 1 - t];
    const Plan p = shifted_plan<T>({d.out_channels, d.out_h, d.out_w, d.dilation_h * (d.kernel_h - 1) - d.pad_h,
                                    d.dilation_w * (d.kernel_w - 1) - d.pad_w, d.kernel_h, d.kernel_w, d.dilation_h,
                                    d.dilation_w, d.in_h, d.in_w});
    grid_product(p, gy, d.batch, f, d.in_channels, gx, d.in_w, options);
    return;
  }
  if (use_phases_for_data(d)) {
    backward_data_phases(gy, w, gx, d, options);
    return;
  }
  Tensor transposed = empty({k_rows * d.out_channels}, options);
  T* wt = static_cast<T*>(transposed.raw_data());
  for (std::int64_t k = 0; k < k_rows; ++k)
    for (std::int64_t m = 0; m < d.out_channels; ++m) wt[k * d.out_channels + m] = w[m * k_rows + k];
  // Per image, col = wt gy, gy read as the source of a 1x1 convolution; then col2im. col2im needs
  // all of an image's col, so the product for one image runs on the thread that owns the image.
  const Plan p = shifted_plan<T>({d.out_channels, d.out_h, d.out_w, 0, 0, 1, 1, 1, 1, d.out_h, d.out_w});
  const std::int64_t col_size = k_rows * p.grid, in_image = d.in_channels * d.in_h * d.in_w;
  Tensor cols = empty({num_threads() * col_size}, options);
  const auto work = [&](std::int64_t t, std::int64_t b, std::int64_t e) {
    T* col = static_cast<T*>(cols.raw_data()) + t * col_size;
    for (std::int64_t n = b; n < e; ++n) {
      grid_product(p, gy + n * p.in_image, 1, wt, k_rows, col, d.out_w, options);
      col2im(d, col, gx + n * in_image);
    }
  };
  for_each_thread(d.batch, d.batch * k_rows * d.out_channels * p.grid, work);
}

// gyt[q - q0, m] = gy[m, oh, ow] for grid positions q0 <= q < q0 + depth of one image, q = oh * grid_w
// + ow; zero in the grid's extra columns and in the channels that round a row up to whole vectors.
// Built one chunk at a time, just before the tiles read it, so it never leaves the L1 cache.
// The grid position is stepped, not divided out of q: a division per element cost as much as the
// products that read the chunk.
template <class T>
void transpose_gradient(const T* gy, const Conv2dDesc& d, const Plan& p, std::int64_t q0, std::int64_t depth,
                        std::int64_t channels, T* gyt) {
  const std::int64_t out_w = d.out_w, grid_w = p.grid_w, live = d.out_channels, plane = d.out_h * d.out_w;
  std::int64_t oh = q0 / grid_w, ow = q0 % grid_w;
  for (std::int64_t q = q0; q < q0 + depth; ++q, gyt += channels) {
    if (ow >= out_w) {
      for (std::int64_t m = 0; m < channels; ++m) gyt[m] = T(0);
    } else {
      const T* in = gy + oh * out_w + ow;
      for (std::int64_t m = 0; m < channels; ++m) gyt[m] = m < live ? in[m * plane] : T(0);
    }
    if (++ow == grid_w) ow = 0, ++oh;
  }
}

// gyg[m, q] = gy[m, oh, ow] for one image at grid position q = oh * grid_w + ow, zero in the grid's extra
// columns and from the end of the grid up to `length`.
template <class T>
void grid_gradient(const T* gy, const Conv2dDesc& d, const Plan& p, std::int64_t length, T* gyg) {
  for (std::int64_t m = 0; m < d.out_channels; ++m, gyg += length) {
    T* row = gyg;
    for (std::int64_t oh = 0; oh < d.out_h; ++oh, row += p.grid_w, gy += d.out_w) {
      std::copy(gy, gy + d.out_w, row);
      std::fill(row + d.out_w, row + p.grid_w, T(0));
    }
    std::fill(row, gyg + length, T(0));
  }
}

// acc[k, m] += sum_{q < depth} src[rows[k] + q] gyt[q, m] for all taps k and the vectors of output
// channels starting at m0, with tiles of NV vectors.
template <class T, int NV>
void accumulate_filter(const T* src, const std::int64_t* rows, std::int64_t k_rows, const T* gyt,
                       const std::int64_t* gyt_rows, std::int64_t depth, std::int64_t m0, std::int64_t channels,
                       T* acc) {
  conv::TallTile<T, NV> tile;
  for (std::int64_t k0 = 0; k0 < k_rows; k0 += tile.rows) {
    T* sums = acc + k0 * channels + m0;
    for (int k = 0; k < tile.rows; ++k)
      for (int j = 0; j < NV; ++j) conv::load(tile.acc[k][j], sums + k * channels + j * kLanes<T>);
    tile.multiply(depth, src, rows + k0, gyt + m0, gyt_rows);
    for (int k = 0; k < tile.rows; ++k)
      for (int j = 0; j < NV; ++j) conv::store(sums + k * channels + j * kLanes<T>, tile.acc[k][j]);
  }
}

// The same for all output channels, four vectors at a time.
template <class T>
void accumulate_filter(const T* src, const std::int64_t* rows, std::int64_t k_rows, const T* gyt,
                       const std::int64_t* gyt_rows, std::int64_t depth, std::int64_t channels, T* acc) {
  for (std::int64_t m0 = 0; m0 < channels; m0 += 4 * kLanes<T>) {
    switch ((channels - m0) / kLanes<T>) {
      case 1: accumulate_filter<T, 1>(src, rows, k_rows, gyt, gyt_rows, depth, m0, channels, acc); break;
      case 2: accumulate_filter<T, 2>(src, rows, k_rows, gyt, gyt_rows, depth, m0, channels, acc); break;
      case 3: accumulate_filter<T, 3>(src, rows, k_rows, gyt, gyt_rows, depth, m0, channels, acc); break;
      default: accumulate_filter<T, 4>(src, rows, k_rows, gyt, gyt_rows, depth, m0, channels, acc);
    }
  }
}

// acc[k, m, l] += sum over grid positions q = l (mod lanes) of src[rows[k] + q] gyg[m, q], over one
// image's `length` positions, for all taps k and for output channels m0 <= m < m0 + MC: lane-wise
// sums, added up once at the end rather than per image. Each image's sums start from zero and are
// then added, so that no lane runs a sum over the whole batch (float32 rounding grows with its length).
template <class T, int MC>
void accumulate_filter_dot(const T* src, const std::int64_t* rows, std::int64_t k_rows, const T* gyg,
                           std::int64_t length, std::int64_t m0, std::int64_t channels, T* acc) {
  conv::DotTile<T, std::clamp(conv::kAccumulators / MC, 1, 12), MC> tile;
  for (std::int64_t k0 = 0; k0 < k_rows; k0 += tile.rows) {
    tile.zero();
    tile.multiply(length, src, rows + k0, gyg + m0 * length, length);
    T* sums = acc + (k0 * channels + m0) * kLanes<T>;
    for (int k = 0; k < tile.rows; ++k)
      for (int m = 0; m < MC; ++m) {
        conv::Vec<T> total;
        conv::load(total, sums + (k * channels + m) * kLanes<T>);
        total += tile.acc[k][m];
        conv::store(sums + (k * channels + m) * kLanes<T>, total);
      }
  }
}

// The same for all output channels, in groups of 8, 4, 2 and 1.
template <class T>
void accumulate_filter_dot(const T* src, const std::int64_t* rows, std::int64_t k_rows, const T* gyg,
                           std::int64_t length, std::int64_t channels, T* acc) {
  for (std::int64_t m0 = 0; m0 < channels;) {
    const std::int64_t left = channels - m0;
    if (left >= 8) {
      accumulate_filter_dot<T, 8>(src, rows, k_rows, gyg, length, m0, channels, acc);
      m0 += 8;
    } else if (left >= 4) {
      accumulate_filter_dot<T, 4>(src, rows, k_rows, gyg, length, m0, channels, acc);
      m0 += 4;
    } else if (left >= 2) {
      accumulate_filter_dot<T, 2>(src, rows, k_rows, gyg, length, m0, channels, acc);
      m0 += 2;
    } else {
      accumulate_filter_dot<T, 1>(src, rows, k_rows, gyg, length, m0, channels, acc);
      m0 += 1;
    }
  }
}

template <class T>
void backward_filter(const T* x, const T* gy, T* gw, const Conv2dDesc& d, const TensorOptions& options) {
  const std::int64_t k_rows = d.in_channels * d.kernel_h * d.kernel_w, out_image = d.out_channels * d.out_h * d.out_w;
  Plan p = forward_plan<T>(d);
  // Tiles past the last tap repeat it (at most 12 rows a tile); their sums are never read.
  const std::int64_t padded_rows = k_rows + 12;
  p.rows.resize(padded_rows, p.rows.empty() ? 0 : p.rows.back());
  // Output channels go in the vector, rounded up to whole vectors, unless that would more than
  // double the work: then dot products over positions, one chunk per image.
  const bool dot = 2 * d.out_channels <= kLanes<T>;
  const std::int64_t channels = dot ? d.out_channels : round_up(std::max<std::int64_t>(d.out_channels, 1), kLanes<T>);
  // A chunk of gyt rows is reused by every tap tile: about 32 KiB, to stay in the L1 cache.
  const std::int64_t chunk = dot ? round_up(p.grid, kLanes<T>) : std::max<std::int64_t>(8, 8192 / channels);
  const std::int64_t chunks = ceil_div(p.grid, chunk);
  std::vector<std::int64_t> gyt_rows(dot ? 0 : chunk);
  for (std::size_t q = 0; q < gyt_rows.size(); ++q) gyt_rows[q] = static_cast<std::int64_t>(q) * channels;

  // The dot products keep a sum per lane.
  const std::int64_t lanes = dot ? kLanes<T> : 1;
  const std::int64_t threads = num_threads(), sums_size = padded_rows * channels * lanes;
  const std::int64_t scratch_size = p.scratch_size + channels * chunk;  // the source, then gy's chunk
  Tensor sums = zeros({threads * sums_size}, options);
  Tensor scratch = empty({threads * scratch_size}, options);
  const auto work = [&](std::int64_t t, std::int64_t b, std::int64_t e) {
    T* src = static_cast<T*>(scratch.raw_data()) + t * scratch_size;
    T* g = src + p.scratch_size;
    T* acc = static_cast<T*>(sums.raw_data()) + t * sums_size;
    for (std::int64_t item = b, filled = -1; item < e; ++item) {
      const std::int64_t n = item / chunks, q0 = item % chunks * chunk, depth = std::min(chunk, p.grid - q0);
      if (n != filled) fill_source(p, x + n * p.in_image, src), filled = n;
      if (dot) {
        grid_gradient(gy + n * out_image, d, p, chunk, g);
        accumulate_filter_dot(src, p.rows.data(), k_rows, g, chunk, channels, acc);
      } else {
        transpose_gradient(gy + n * out_image, d, p, q0, depth, channels, g);
        accumulate_filter(src + q0, p.rows.data(), k_rows, g, gyt_rows.data(), depth, channels, acc);
      }
    }
  };
  for_each_thread(d.batch * chunks, d.batch * k_rows * channels * p.grid, work);

  const T* acc = static_cast<const T*>(sums.raw_data());
  for (std::int64_t m = 0; m < d.out_channels; ++m) {
    for (std::int64_t k = 0; k < k_rows; ++k) {
      T total = 0;
      for (std::int64_t t = 0; t < threads; ++t)
        for (std::int64_t l = 0; l < lanes; ++l) total += acc[t * sums_size + (k * channels + m) * lanes + l];
      gw[m * k_rows + k] = total;
    }
  }
}

}  // namespace

ConvSource conv_source() { return current_source; }
void set_conv_source(ConvSource source) { current_source = source; }

void CpuBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dDesc& d) {
  dispatch(x.dtype(), [&]<class T>() {
    forward(static_cast<const T*>(x.raw_data()), static_cast<const T*>(w.raw_data()), static_cast<T*>(y.raw_data()), d,
            x.options());
  });
}

void CpuBackend::conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const Conv2dDesc& d) {
  dispatch(gy.dtype(), [&]<class T>() {
    backward_data(static_cast<const T*>(gy.raw_data()), static_cast<const T*>(w.raw_data()),
                  static_cast<T*>(gx.raw_data()), d, gy.options());
  });
}

void CpuBackend::conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const Conv2dDesc& d) {
  dispatch(x.dtype(), [&]<class T>() {
    backward_filter(static_cast<const T*>(x.raw_data()), static_cast<const T*>(gy.raw_data()),
                    static_cast<T*>(gw.raw_data()), d, x.options());
  });
}

}  // namespace fpi::backend::cpu
