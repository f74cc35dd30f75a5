// The MPI communicator's factory, for world() only; compiled when fpi is built with MPI (FPI_WITH_MPI).
#pragma once

#include <memory>

#include "fpi/dist/communicator.hpp"

namespace fpi::dist {

// Initialises MPI (once per process; MPI_Finalize runs when the communicator is destroyed at exit) and
// wraps MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace fpi::dist
