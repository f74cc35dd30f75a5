// The processes of a data-parallel run and the few collective operations the trainer needs: all-reduce,
// broadcast from rank 0, barrier, abort. The trainer sees only this interface, so a GPU implementation
// (NCCL, on device buffers and a stream) can sit beside the MPI one without touching it; no MPI type
// appears here. `world()` is the communicator the process was launched with: MPI under `mpirun` when
// fpi was built with it, otherwise a single process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "fpi/tensor.hpp"

namespace fpi::dist {

enum class ReduceOp { Sum, Max };

// A non-blocking all-reduce in flight. Its values may be read only after wait(). Destroying one that has
// not finished waits for it: the collective writes into its buffer until then.
class PendingReduce {
 public:
  virtual ~PendingReduce() = default;
  // Lets the collective move on and says whether it has finished. MPI libraries progress non-blocking
  // collectives only inside MPI calls, so a caller that wants one to advance during a long computation
  // calls this now and then; it is cheap.
  virtual bool test() = 0;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "single process", "Open MPI v4.1.4, rank 0 of 2".
  virtual std::string describe() const = 0;

  // Every rank's `values` combined element-wise, written back on every rank. All ranks must call the
  // collectives in the same order with the same lengths.
  virtual void all_reduce(std::span<float> values, ReduceOp op = ReduceOp::Sum) = 0;
  virtual void all_reduce(std::span<double> values, ReduceOp op = ReduceOp::Sum) = 0;
  // all_reduce started without waiting; `values` must outlive the returned request. Collectives started
  // this way count in the order all ranks must call collectives in, like the blocking ones.
  virtual std::unique_ptr<PendingReduce> start_all_reduce(std::span<double> values, ReduceOp op = ReduceOp::Sum) = 0;
  // Rank 0's bytes copied to every rank.
  virtual void broadcast(std::span<std::byte> bytes) = 0;
  virtual void barrier() = 0;
  // Ends every process of the run with `status`: after an error on one rank the others would otherwise
  // wait forever in the next collective. Never returns (abort_processes, then this process exits).
  [[noreturn]] void abort(int status);

  // The same on a contiguous CPU tensor (float32 or float64), in place.
  void all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum);
  void broadcast(const Tensor& tensor);

 protected:
  // Asks the launcher to end the other processes; may return.
  virtual void abort_processes(int status) = 0;
};

// One process: every collective is the identity.
std::unique_ptr<Communicator> single_process();

// The communicator of this process, made on first use: MPI when fpi was built with it and the process
// was started by an MPI launcher, else a single process. A build without MPI started by a launcher with
// more than one process is an fpi::Error (it would train N independent copies).
Communicator& world();

// Whether this build of fpi has the MPI communicator.
bool mpi_built();

// The number of processes an MPI launcher started this one among (Open MPI's OMPI_COMM_WORLD_SIZE,
// PMI_SIZE of MPICH and Slurm, PMIX_SIZE-style variables), or 1 when none did.
int launcher_world_size();

}  // namespace fpi::dist
