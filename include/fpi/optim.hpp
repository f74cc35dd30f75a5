// The whole optim layer in one include: optimizers, gradient clipping and learning-rate schedules.
#pragma once

#include "fpi/optim/clip_grad.hpp"
#include "fpi/optim/optimizer.hpp"
#include "fpi/optim/schedule.hpp"
