// The communicator-independent parts of fpi::dist: the tensor forms of the collectives, the
// single-process communicator, and `world()`, which picks MPI only when a launcher started the process.
#include "fpi/dist/communicator.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

#if FPI_WITH_MPI
#include "dist/mpi/mpi_communicator.hpp"
#endif

namespace fpi::dist {

namespace {

void check_cpu_contiguous(const Tensor& tensor, const char* operation) {
  FPI_CHECK(tensor.device().is_cpu(), "dist::", operation, ": the tensor is on ", tensor.device().str(),
            "; this communicator reduces CPU tensors only");
  FPI_CHECK(tensor.is_contiguous(), "dist::", operation, ": the tensor (shape ", shape_str(tensor.shape()),
            ") is not contiguous");
}

class Finished final : public PendingReduce {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single process"; }
  void all_reduce(std::span<float>, ReduceOp) override {}
  void all_reduce(std::span<double>, ReduceOp) override {}
  std::unique_ptr<PendingReduce> start_all_reduce(std::span<double>, ReduceOp) override {
    return std::make_unique<Finished>();
  }
  void broadcast(std::span<std::byte>) override {}
  void barrier() override {}

 protected:
  void abort_processes(int) override {}
};

// A whole number from the environment, or -1 when the variable is unset or not a number.
int env_int(const char* name) {
  const char* text = std::getenv(name);
  if (!text || !*text) return -1;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  return *end == '\0' && value >= 0 && value < (1L << 30) ? static_cast<int>(value) : -1;
}

}  // namespace

void Communicator::all_reduce(const Tensor& tensor, ReduceOp op) {
  check_cpu_contiguous(tensor, "all_reduce");
  const auto n = static_cast<std::size_t>(tensor.numel());
  if (tensor.dtype() == DType::Float32) all_reduce(std::span<float>(tensor.data<float>(), n), op);
  else all_reduce(std::span<double>(tensor.data<double>(), n), op);
}

void Communicator::broadcast(const Tensor& tensor) {
  check_cpu_contiguous(tensor, "broadcast");
  const std::size_t bytes = static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype());
  broadcast(std::span<std::byte>(static_cast<std::byte*>(tensor.raw_data()), bytes));
}

void Communicator::abort(int status) {
  std::fflush(nullptr);
  abort_processes(status);
  // Not std::exit: static destructors (MPI_Finalize among them) must not run after an abort.
  std::_Exit(status);
}

std::unique_ptr<Communicator> single_process() { return std::make_unique<SingleProcess>(); }

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"})
    if (const int size = env_int(name); size > 0) return size;
  // PMIx launchers may set only the rank; a rank above 0 still means several processes.
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"})
    if (const int rank = env_int(name); rank > 0) return rank + 1;
  return 1;
}

#if FPI_WITH_MPI
bool mpi_built() { return true; }
#else
bool mpi_built() { return false; }
#endif

Communicator& world() {
  // One process started alone, or as the only process of `mpirun -np 1`, needs no MPI at all.
  static const std::unique_ptr<Communicator> communicator = []() -> std::unique_ptr<Communicator> {
    const int launched = launcher_world_size();
    if (launched <= 1) return single_process();
#if FPI_WITH_MPI
    return make_mpi_communicator();
#else
    fail("this fpi was built without MPI but was started as one of ", launched,
         " processes (an MPI launcher's environment says so) and would train ", launched,
         " independent copies; rebuild it with -DFPI_MPI=ON (Debian: libopenmpi-dev openmpi-bin) or run one process");
#endif
  }();
  return *communicator;
}

}  // namespace fpi::dist
