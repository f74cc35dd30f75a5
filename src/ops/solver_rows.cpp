// The fixed-point solver's per-row primitives: argument checks, one backend call each.
#include "ops/solver_rows.hpp"

#include "ops/op_util.hpp"

namespace fpi::ops {
namespace {

void check_state(const Tensor& state, const char* op) {
  check_defined(state, op, "the row state");
  FPI_CHECK(state.dtype() == DType::Float64 && state.is_contiguous() && state.dim() == 2 &&
                state.size(1) == SolverColumn::Count,
            op, ": the row state must be a contiguous float64 (rows, ", static_cast<int>(SolverColumn::Count),
            ") tensor, got ", dtype_name(state.dtype()), " ", shape_str(state.shape()));
}

void check_rows(const Tensor& t, const Tensor& state, const char* op, const char* what) {
  check_defined(t, op, what);
  FPI_CHECK(t.device() == state.device(), op, ": ", what, " is on ", t.device().str(), " but the row state on ",
            state.device().str());
  FPI_CHECK(t.dim() >= 1 && t.size(0) == state.size(0), op, ": ", what, " has shape ", shape_str(t.shape()),
            " but the row state has ", state.size(0), " rows");
}

}  // namespace

void solver_rows_step_(const Tensor& state, const Tensor& norms, const SolverControl& control) {
  constexpr const char* op = "solver_rows_step_";
  check_state(state, op);
  check_rows(norms, state, op, "the norms");
  FPI_CHECK(norms.dtype() == DType::Float64 && norms.is_contiguous() && norms.dim() == 2 &&
                norms.size(1) == NormColumn::Count,
            op, ": the norms must be a contiguous float64 (rows, ", static_cast<int>(NormColumn::Count),
            ") tensor, got ", dtype_name(norms.dtype()), " ", shape_str(norms.shape()));
  backend_of(state).solver_rows_step(state, norms, control);
}

Tensor anderson_weights(const Tensor& gram, const Tensor& state, int latest) {
  constexpr const char* op = "anderson_weights";
  check_state(state, op);
  check_rows(gram, state, op, "the Gram matrices");
  FPI_CHECK(gram.dim() == 3 && gram.size(1) == gram.size(2) && latest >= 0 && latest < gram.size(1), op,
            ": expected Gram matrices (rows, h, h) and a latest slot below h, got ", shape_str(gram.shape()),
            " and ", latest);
  // A private float64 copy: the elimination overwrites it.
  Tensor work = gram.dtype() == DType::Float64 ? gram.clone() : gram.to(DType::Float64).contiguous();
  Tensor weights = empty({gram.size(0), gram.size(1)}, {DType::Float64, gram.device()});
  backend_of(state).anderson_weights(work, weights, state, latest);
  return weights;
}

void copy_rows_where_(const Tensor& dst, const Tensor& src, const Tensor& state, int column) {
  constexpr const char* op = "copy_rows_where_";
  check_state(state, op);
  check_rows(dst, state, op, "the destination");
  check_rows(src, state, op, "the source");
  FPI_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous(), op, ": destination ",
            dtype_name(dst.dtype()), " ", shape_str(dst.shape()), " (contiguous) and source ", dtype_name(src.dtype()),
            " ", shape_str(src.shape()), " must have one shape and dtype");
  FPI_CHECK(column >= 0 && column < SolverColumn::Count, op, ": no state column ", column);
  backend_of(state).copy_rows_where(dst, src.contiguous(), state.select(1, column));
  dst.impl()->storage->bump_version();
}

bool host_reads_are_free(Device device) { return backend::backend_for(device).host_reads_are_free(); }

}  // namespace fpi::ops
