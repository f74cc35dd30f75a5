// Device queries: whether CUDA devices can be used here, how many there are, and waiting for a
// device's queued work. They never throw, so a program can choose its device before making tensors;
// asking for a CUDA tensor that cannot be made throws an fpi::Error that says why.
#pragma once

#include "fpi/core.hpp"

namespace fpi {

// False in a build without the CUDA backend, and when no driver or no GPU is present.
bool cuda_available();
// 0 in the same situations.
int cuda_device_count();
// Blocks until the work queued on `device` has finished: GPU kernels run asynchronously, so a timing
// must synchronize before it reads the clock. A no-op on the CPU.
void synchronize(Device device);

}  // namespace fpi
