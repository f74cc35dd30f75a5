// The experiments' data as fpi::data::Dataset splits: Bibtex multi-label classification, gray-scale image
// denoising (Train400 patches, BSD68 whole images) and the paper's toy projection problem (Section 4.1).
// Every option is checked on construction, and the error names the option or the file at fault.
#pragma once

#include <cstdint>
#include <string>

#include "fpi/data/dataset.hpp"
#include "fpi/tensor.hpp"

namespace fpi::data {

struct BibtexOptions {
  std::string dir = "data/bibtex";
  double validation_fraction = 0.1;  // rows of bibtex-train.arff held out for model selection, in [0, 0.5]
  std::uint64_t split_seed = 0;      // which rows: a seeded permutation, so the split is reproducible
  std::uint64_t shuffle_seed = 0;    // the training order of each epoch
  DType dtype = kFloat32;
};
// fields: "features" (1836), "labels" (159). train: shuffled per epoch; validation/test: in file order.
Splits bibtex_splits(const BibtexOptions& options);

struct DenoisingOptions {
  std::string dir = "data/denoising";      // Train400/, BSD68/, SHA256SUMS
  double sigma = 25.0;                     // noise standard deviation on the 0-255 scale, > 0 and <= 255
  std::int64_t patch_size = 40;
  std::int64_t patches_per_epoch = 25600;  // random patches drawn per training epoch
  bool flips = true;                       // one of the 8 symmetries of the square per patch (flips, transposes)
  std::int64_t validation_images = 8;      // Train400 images held out (whole, with fixed noise) for model selection
  std::int64_t max_train_images = 0;       // 0: all (small numbers make tests and the quick profile fast)
  std::int64_t max_test_images = 0;        // 0: all 68
  std::uint64_t seed = 0;                  // patch positions, flips and training noise
  std::uint64_t test_noise_seed = 0;       // the fixed noise of validation and test images, so PSNR is reproducible
  bool verify_checksums = true;
  DType dtype = kFloat32;
};
// fields: "noisy" and "clean", (1, P, P) for train, (1, -1, -1) for validation and test (whole images,
// max_batch_size() 1). Pixel values on the [0, 1] scale; noise sigma/255. Noise is not clipped to [0, 1]:
// the denoisers of the literature (DnCNN and the paper's) train and test on unclipped additive Gaussian
// noise, and clipping would change the noise distribution the sigma names.
// Training patch j of epoch e (image, position, symmetry, noise) depends only on (seed, e, j), so it does
// not change with the batch size. The transposes join the flips because natural images have no
// preferred orientation, and together they make DnCNN's 8 augmentation modes. Validation holds out the
// last validation_images of Train400 in name order (max_train_images takes the first of the others);
// validation and test noise depends only on (test_noise_seed, split, image index). Images listed in
// dir/SHA256SUMS are checked as they are read; an image missing from the list is an error.
Splits denoising_splits(const DenoisingOptions& options);

struct ToyOptions {  // the paper's Section 4.1: learn t = argmin_{-1<=x<=1} ||x - a||^2 = clamp(a, -1, 1)
  std::int64_t dim = 10;
  std::int64_t train_size = 2000, validation_size = 500, test_size = 1000;
  double input_scale = 2.0;  // a ~ N(0, input_scale^2) per element (so about half the entries are clamped)
  std::uint64_t seed = 0;
  DType dtype = kFloat32;
};
// fields: "input" (dim) = a, "target" (dim) = t. train shuffled per epoch.
Splits toy_splits(const ToyOptions& options);

}  // namespace fpi::data
