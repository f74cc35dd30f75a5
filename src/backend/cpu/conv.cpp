// CPU convolution: im2col / col2im around OpenBLAS GEMM, one image at a time so the column buffer
// stays small.
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dispatch.hpp"
#include "backend/cpu/parallel.hpp"

namespace fpi::backend::cpu {
namespace {

// col[(c, i, j), (oh, ow)] = x[c, oh*stride - pad + i*dilation, ow*stride - pad + j*dilation], 0 outside.
template <class T>
void im2col(const T* x, const Conv2dDesc& d, T* col) {
  const std::int64_t plane = d.out_h * d.out_w;
  parallel_for(0, d.in_channels * d.kernel_h * d.kernel_w, 8, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      const std::int64_t c = r / (d.kernel_h * d.kernel_w), i = r / d.kernel_w % d.kernel_h, j = r % d.kernel_w;
      const T* xc = x + c * d.in_h * d.in_w;
      T* out = col + r * plane;
      for (std::int64_t oh = 0; oh < d.out_h; ++oh) {
        const std::int64_t h = oh * d.stride_h - d.pad_h + i * d.dilation_h;
        T* row = out + oh * d.out_w;
        if (h < 0 || h >= d.in_h) {
          for (std::int64_t ow = 0; ow < d.out_w; ++ow) row[ow] = T(0);
          continue;
        }
        for (std::int64_t ow = 0; ow < d.out_w; ++ow) {
          const std::int64_t w = ow * d.stride_w - d.pad_w + j * d.dilation_w;
          row[ow] = (w >= 0 && w < d.in_w) ? xc[h * d.in_w + w] : T(0);
        }
      }
    }
  });
}

// The adjoint of im2col: x[c, h, w] += col[(c, i, j), (oh, ow)]; x must be zeroed first.
template <class T>
void col2im(const T* col, const Conv2dDesc& d, T* x) {
  const std::int64_t plane = d.out_h * d.out_w;
  parallel_for(0, d.in_channels, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t c = b; c < e; ++c) {
      T* xc = x + c * d.in_h * d.in_w;
      for (std::int64_t i = 0; i < d.kernel_h; ++i) {
        for (std::int64_t j = 0; j < d.kernel_w; ++j) {
          const T* in = col + ((c * d.kernel_h + i) * d.kernel_w + j) * plane;
          for (std::int64_t oh = 0; oh < d.out_h; ++oh) {
            const std::int64_t h = oh * d.stride_h - d.pad_h + i * d.dilation_h;
            if (h < 0 || h >= d.in_h) continue;
            for (std::int64_t ow = 0; ow < d.out_w; ++ow) {
              const std::int64_t w = ow * d.stride_w - d.pad_w + j * d.dilation_w;
              if (w >= 0 && w < d.in_w) xc[h * d.in_w + w] += in[oh * d.out_w + ow];
            }
          }
        }
      }
    }
  });
}

std::int64_t col_rows(const Conv2dDesc& d) { return d.in_channels * d.kernel_h * d.kernel_w; }

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dDesc& d) {
  dispatch(x.dtype(), [&]<class T>() {
    const std::int64_t rows = col_rows(d), plane = d.out_h * d.out_w;
    Tensor col = empty({rows, plane}, x.options());
    for (std::int64_t n = 0; n < d.batch; ++n) {
      im2col(static_cast<const T*>(x.raw_data()) + n * d.in_channels * d.in_h * d.in_w, d, static_cast<T*>(col.raw_data()));
      GemmDesc g;
      g.dtype = x.dtype();
      g.m = d.out_channels;
      g.n = plane;
      g.k = rows;
      g.a = w.raw_data();
      g.lda = rows;
      g.b = col.raw_data();
      g.ldb = plane;
      g.c = static_cast<T*>(y.raw_data()) + n * d.out_channels * plane;
      g.ldc = plane;
      gemm(g);
    }
  });
}

void CpuBackend::conv2d_backward_data(const Tensor& gy, const Tensor& w, const Tensor& gx, const Conv2dDesc& d) {
  dispatch(gy.dtype(), [&]<class T>() {
    const std::int64_t rows = col_rows(d), plane = d.out_h * d.out_w;
    Tensor col = empty({rows, plane}, gy.options());
    fill(gx, 0.0);
    for (std::int64_t n = 0; n < d.batch; ++n) {
      GemmDesc g;
      g.dtype = gy.dtype();
      g.trans_a = true;
      g.m = rows;
      g.n = plane;
      g.k = d.out_channels;
      g.a = w.raw_data();
      g.lda = rows;
      g.b = static_cast<const T*>(gy.raw_data()) + n * d.out_channels * plane;
      g.ldb = plane;
      g.c = col.raw_data();
      g.ldc = plane;
      gemm(g);
      col2im(static_cast<const T*>(col.raw_data()), d, static_cast<T*>(gx.raw_data()) + n * d.in_channels * d.in_h * d.in_w);
    }
  });
}

void CpuBackend::conv2d_backward_filter(const Tensor& x, const Tensor& gy, const Tensor& gw, const Conv2dDesc& d) {
  dispatch(x.dtype(), [&]<class T>() {
    const std::int64_t rows = col_rows(d), plane = d.out_h * d.out_w;
    Tensor col = empty({rows, plane}, x.options());
    for (std::int64_t n = 0; n < d.batch; ++n) {
      im2col(static_cast<const T*>(x.raw_data()) + n * d.in_channels * d.in_h * d.in_w, d, static_cast<T*>(col.raw_data()));
      GemmDesc g;
      g.dtype = x.dtype();
      g.trans_b = true;
      g.m = d.out_channels;
      g.n = rows;
      g.k = plane;
      g.a = static_cast<const T*>(gy.raw_data()) + n * d.out_channels * plane;
      g.lda = plane;
      g.b = col.raw_data();
      g.ldb = plane;
      g.beta = n == 0 ? 0.0 : 1.0;
      g.c = gw.raw_data();
      g.ldc = rows;
      gemm(g);
    }
    if (d.batch == 0) fill(gw, 0.0);
  });
}

}  // namespace fpi::backend::cpu
