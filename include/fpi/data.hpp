// The whole data layer in one include: ARFF and Bibtex loading, PNG images, sha256 checks, the
// experiments' datasets and loaders, multi-label F1, MSE and PSNR.
#pragma once

#include "fpi/data/arff.hpp"
#include "fpi/data/checksum.hpp"
#include "fpi/data/dataset.hpp"
#include "fpi/data/datasets.hpp"
#include "fpi/data/image.hpp"
#include "fpi/data/loader.hpp"
#include "fpi/data/metrics.hpp"
