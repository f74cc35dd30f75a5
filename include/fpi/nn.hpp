// The whole nn layer in one include: Module, the layers, Sequential and the initialisers.
#pragma once

#include "fpi/nn/activation.hpp"
#include "fpi/nn/contraction.hpp"
#include "fpi/nn/fixed_point.hpp"
#include "fpi/nn/init.hpp"
#include "fpi/nn/layers.hpp"
#include "fpi/nn/module.hpp"
#include "fpi/nn/sequential.hpp"
