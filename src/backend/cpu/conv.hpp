// How the CPU convolution primitives (conv.cpp) read the input of a convolution with a stride above 1.
// Exposed so that tests can compare the two ways on the same shapes and benchmarks can time each.
//
//   Im2col      the im2col matrix (kernel_h * kernel_w copies of the strided input), and col2im for the
//               input gradient
//   PhaseSplit  the input split into stride_h * stride_w phase planes (plane (a, b) holds the pixels at
//               rows a, a + stride_h, ... and columns b, b + stride_w, ...); every tap of the kernel is
//               then an offset into one plane, so the source is about the input's size and the product
//               reads it as a stride-1 convolution does. The input gradient is a stride-1 product per
//               phase, scattered back into the image.
//   Auto        the phase split, except for an input gradient whose phase kernels would carry more
//               zero taps than the cost rule in conv.cpp allows
#pragma once

namespace fpi::backend::cpu {

enum class ConvSource { Auto, Im2col, PhaseSplit };

ConvSource conv_source();
// Call it between operations, never while a convolution runs.
void set_conv_source(ConvSource source);

}  // namespace fpi::backend::cpu
