// fpi::dist::Communicator on MPI_COMM_WORLD (Open MPI's C API). Every MPI call's result is checked; a
// failure names the call. MPI's default error handler on MPI_COMM_WORLD aborts the job, which is what
// a data-parallel run wants when a peer dies: no rank waits forever.
#include "dist/mpi/mpi_communicator.hpp"

// The C API only: from C++, mpi.h would also pull in the deprecated C++ bindings, which need a library
// (libmpi_cxx) that MPI::MPI_C does not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

namespace fpi::dist {

namespace {

void check(int result, const char* call) {
  if (result == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(result, text, &length);
  fail(call, " failed: ", std::string(text, static_cast<std::size_t>(length)));
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX; }

// MPI counts are int; larger buffers go in pieces.
template <class T>
void all_reduce_chunks(std::span<T> values, MPI_Datatype type, ReduceOp op) {
  constexpr std::size_t chunk = INT_MAX / 2;
  for (std::size_t begin = 0; begin < values.size(); begin += chunk) {
    const std::size_t count = std::min(chunk, values.size() - begin);
    check(MPI_Allreduce(MPI_IN_PLACE, values.data() + begin, static_cast<int>(count), type, mpi_op(op),
                        MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
}

// MPI_Iallreduce in int-sized pieces, one request each.
class MpiPendingReduce final : public PendingReduce {
 public:
  MpiPendingReduce(std::span<double> values, ReduceOp op) {
    constexpr std::size_t chunk = INT_MAX / 2;
    for (std::size_t begin = 0; begin < values.size(); begin += chunk) {
      const std::size_t count = std::min(chunk, values.size() - begin);
      MPI_Request request = MPI_REQUEST_NULL;
      check(MPI_Iallreduce(MPI_IN_PLACE, values.data() + begin, static_cast<int>(count), MPI_DOUBLE, mpi_op(op),
                           MPI_COMM_WORLD, &request),
            "MPI_Iallreduce");
      requests_.push_back(request);
    }
  }
  ~MpiPendingReduce() override {
    // MPI forbids freeing a pending collective's request; a finished one is MPI_REQUEST_NULL already.
    if (!requests_.empty())
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
  }
  bool test() override {
    int done = 0;
    check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
          "MPI_Testall");
    if (done) requests_.clear();
    return done != 0;
  }
  void wait() override {
    check(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
    requests_.clear();
  }

 private:
  std::vector<MPI_Request> requests_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized");
    // fpi's own threads never call MPI; only the thread that made the communicator does.
    if (!initialized) check(MPI_Init(nullptr, nullptr), "MPI_Init");
    check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    check(MPI_Get_library_version(version, &length), "MPI_Get_library_version");
    library_ = std::string(version, static_cast<std::size_t>(length));
    library_ = library_.substr(0, library_.find(','));
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override {
    return library_ + ", rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }
  void all_reduce(std::span<float> values, ReduceOp op) override { all_reduce_chunks(values, MPI_FLOAT, op); }
  void all_reduce(std::span<double> values, ReduceOp op) override { all_reduce_chunks(values, MPI_DOUBLE, op); }
  std::unique_ptr<PendingReduce> start_all_reduce(std::span<double> values, ReduceOp op) override {
    return std::make_unique<MpiPendingReduce>(values, op);
  }
  void broadcast(std::span<std::byte> bytes) override {
    constexpr std::size_t chunk = INT_MAX / 2;
    for (std::size_t begin = 0; begin < bytes.size(); begin += chunk) {
      const std::size_t count = std::min(chunk, bytes.size() - begin);
      check(MPI_Bcast(bytes.data() + begin, static_cast<int>(count), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

 protected:
  void abort_processes(int status) override { MPI_Abort(MPI_COMM_WORLD, status); }

 private:
  int rank_ = 0, size_ = 1;
  std::string library_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace fpi::dist
