// The whole data layer in one include: ARFF and Bibtex loading, datasets and loaders, multi-label F1.
#pragma once

#include "fpi/data/arff.hpp"
#include "fpi/data/loader.hpp"
#include "fpi/data/metrics.hpp"
