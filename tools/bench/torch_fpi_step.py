"""PyTorch's side of the FPI_NN training-step benchmark (tools/bench/fpi_step.cpp is fpi's): the same FPI
layer written in PyTorch the paper's way, timed the same way, printing the same columns.

The layer is a torch.autograd.Function. Forward: the fixed-point iteration x <- g(x, z) under no_grad.
Backward: one step of g at the fixed point x^ is built with grad, the backward FPI c = (dg/dx)^T c + dL/dx^
is iterated with torch.autograd.grad on that step, and the parameters get (dg/dtheta)^T c from it. The
solver mirrors fpi's defaults so both sides do the same work: per-sample Anderson (type II, history m,
ridge relative to the Gram matrix's mean diagonal, a singular system falls back to the latest value,
solved batched with torch.linalg.solve_ex on the device) or Picard with a fixed damping; each sample
stops when ||g(x) - x|| / max(||x||, ||g(x)||) < tolerance and leaves the active set, so g runs on the
samples still iterating (the backward rebuilds its step on the active samples when at most half of the
rows it covers remain, as fpi does). Finding out which samples remain takes one host synchronisation per
iteration (torch.nonzero), which is how a PyTorch layer with per-sample stopping is written; --stop batch
iterates the batch as one vector (the authors' stopping test) and then one synchronisation per iteration
reads the single residual. Left out: fpi's stall fallback chain (a sample that hits max_iterations is
reported by the fwd max / bwd max columns) and its NaN checks.

With --load DIR (bench_fpi_step --save DIR), each case starts from fpi's initial weights on fpi's batch with
fpi's solver settings, so both sides iterate alike; without it the data are random of the same shape and
the settings fpi's defaults.

Host synchronisations: after the timed samples, --sync-steps more steps run under
torch.cuda.set_sync_debug_mode("warn"), which makes every synchronising CUDA call in PyTorch's C++ code
(a device-to-host copy: .item(), nonzero, a blocking cudaMemcpy; a stream synchronisation) issue a
warning; the warnings are counted and divided by the steps. Explicit torch.cuda.synchronize() calls are
not counted (the step makes none). On the CPU there is nothing to count: 0.

    python3 tools/bench/torch_fpi_step.py [--quick] [--device cpu|cuda] [--case all|bibtex40|bibtex1024|denoise64]
                                          [--load DIR] [--stop per-sample|batch] [--threads N] [--repeat N]
                                          [--steps N] [--warmup N] [--sync-steps N]
"""
import argparse
import os
import statistics
import sys
import time
import warnings

try:
    import torch
except ImportError as error:
    sys.exit(f"torch_fpi_step: this Python ({sys.executable}) cannot import torch ({error}); "
             "run it with one that has PyTorch (on Debian: apt-get install python3-torch, then /usr/bin/python3)")

CASES = {  # name: (batch, map, state shape per sample, input shape per sample, loss)
    "bibtex40": (40, "bibtex", (159,), (1836,), "bce"),
    "bibtex1024": (1024, "bibtex", (159,), (1836,), "bce"),
    "denoise64": (64, "denoise", (1, 40, 40), (1, 40, 40), "mse"),
}
# fpi's SolverOptions defaults and the configs' own settings, for runs without --load.
DEFAULT_SOLVER = {"bibtex": {"solver": "anderson", "tolerance": 1e-4, "max_iterations": 200},
                  "denoise": {"solver": "anderson", "tolerance": 1e-3, "max_iterations": 50}}


class BibtexMap(torch.nn.Module):
    """g(x, z) = sigmoid(fc2(relu(fc1([z, x])))), models/bibtex_fpi_nn.json's map."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(1836 + 159, 600)
        self.fc2 = torch.nn.Linear(600, 159)

    def forward(self, x, z):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(torch.cat([z, x], 1)))))


class DenoiseMap(torch.nn.Module):
    """g(x, z) = conv3(relu(conv2(relu(conv1([z, x]))))), 3x3, models/denoising_fpi_nn.json's map."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 32, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.conv3 = torch.nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, x, z):
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(torch.cat([z, x], 1))))))


class Solver:
    """One direction's settings: fpi's SolverOptions fields that the iteration uses."""

    def __init__(self, values):
        self.anderson = values.get("solver", "anderson") == "anderson"
        self.tolerance = float(values.get("tolerance", 1e-4))
        self.max_iterations = int(values.get("max_iterations", 200))
        self.history = int(values.get("anderson_history", 5))
        self.ridge = float(values.get("anderson_ridge", 1e-8))
        self.damping = float(values.get("damping", 1.0))


def anderson_step(xs, gs, count, latest, x, f, o):
    """Per-row type-II Anderson over the first `count` history slots, as fpi's AndersonHistory::step."""
    if count < 2:
        return x + f * o.damping
    xs, gs = xs[:, :count], gs[:, :count]
    fs = gs - xs
    gram = torch.bmm(fs, fs.transpose(1, 2)).double()
    trace = gram.diagonal(dim1=1, dim2=2).sum(1)
    shift = o.ridge * torch.clamp(trace / count, min=torch.finfo(torch.float64).tiny)
    gram = gram + shift[:, None, None] * torch.eye(count, dtype=gram.dtype, device=gram.device)
    ones = torch.ones(gram.shape[0], count, 1, dtype=gram.dtype, device=gram.device)
    w, info = torch.linalg.solve_ex(gram, ones)  # no host check of `info`, unlike linalg.solve
    w = w.squeeze(2)
    total = w.sum(1, keepdim=True)
    alpha = w / total
    ok = (info == 0) & torch.isfinite(total).squeeze(1) & (total.abs().squeeze(1) >= 1e-300) & \
        torch.isfinite(alpha).all(1)
    latest_only = torch.zeros_like(alpha)
    latest_only[:, latest] = 1.0
    alpha = torch.where(ok[:, None], alpha, latest_only).to(x.dtype)
    mixed = gs if o.damping == 1.0 else gs * o.damping + xs * (1.0 - o.damping)
    return torch.bmm(alpha.unsqueeze(1), mixed).squeeze(1)


def solve(g_rows, x0, o):
    """Iterates x <- g_rows(x, rows) from x0 (n, d), each row until it converges. Returns the rows' last map
    values and their iteration counts (a device tensor: reading it would synchronise)."""
    n, d = x0.shape
    out = x0.clone()
    iterations = torch.zeros(n, dtype=torch.int64, device=x0.device)
    rows = torch.arange(n, device=x0.device)
    x = x0
    if o.anderson:
        xs = x0.new_zeros(n, o.history, d)
        gs = x0.new_zeros(n, o.history, d)
    count, slot = 0, 0
    tiny = torch.finfo(torch.float64).tiny
    for iteration in range(1, o.max_iterations + 1):
        gx = g_rows(x, rows)
        f = gx - x
        scale = torch.clamp(torch.maximum(x.norm(dim=1), gx.norm(dim=1)), min=tiny)
        done = f.norm(dim=1) / scale < o.tolerance
        out.index_copy_(0, rows, gx)  # rows leave with their latest map value; the others are overwritten later
        iterations.index_fill_(0, rows, iteration)
        if iteration == o.max_iterations:
            break
        if o.anderson:
            xs[:, slot] = x
            gs[:, slot] = gx
            latest, slot, count = slot, (slot + 1) % o.history, min(count + 1, o.history)
            nxt = anderson_step(xs, gs, count, latest, x, f, o)
        else:
            nxt = x + f * o.damping
        keep = (~done).nonzero().squeeze(1)  # the host learns which rows go on: one synchronisation
        if keep.numel() == 0:
            break
        if keep.numel() < rows.numel():
            rows, nxt = rows[keep], nxt[keep]
            if o.anderson:
                xs, gs = xs[keep], gs[keep]
        x = nxt
    return out, iterations


class FixedPointLayer(torch.nn.Module):
    """x^ = g(x^, z) with the implicit backward; statistics accumulate on the device."""

    def __init__(self, net, state_shape, forward, backward, per_sample):
        super().__init__()
        self.net = net
        self.state_shape = state_shape
        self.forward_options, self.backward_options = forward, backward
        self.per_sample = per_sample
        self.reset_stats()

    def reset_stats(self):
        self.calls = 0
        # Forward, backward: the per-sample means summed over calls, and the maximum; device tensors once
        # recorded, so that keeping them makes the host wait for nothing.
        self.iteration_sums = [0, 0]
        self.iteration_max = [None, None]

    def record(self, which, iterations):
        self.iteration_sums[which] = self.iteration_sums[which] + iterations.double().mean()
        most = iterations.max()
        previous = self.iteration_max[which]
        self.iteration_max[which] = most if previous is None else torch.maximum(previous, most)

    def g_rows(self, z):
        """g on flat rows (k, d) of the samples `rows` (all of them: z as it is)."""
        n = z.shape[0]

        def g(x, rows):
            z_rows = z if rows.numel() == n else z.index_select(0, rows)
            return self.net(x.view(-1, *self.state_shape), z_rows).flatten(1)

        if self.per_sample:
            return g
        # The batch as one vector: one residual, one Anderson system.
        all_rows = torch.arange(n, device=z.device)
        return lambda x, rows: g(x.view(n, -1), all_rows).reshape(1, -1)

    def forward(self, z):
        self.calls += 1
        return _FixedPoint.apply(self, z, *self.net.parameters())


class _FixedPoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer, z, *params):
        n = z.shape[0]
        d = 1
        for s in layer.state_shape:
            d *= s
        rows0 = z.new_zeros(n, d) if layer.per_sample else z.new_zeros(1, n * d)
        with torch.no_grad():
            x_hat, iterations = solve(layer.g_rows(z), rows0, layer.forward_options)
        layer.record(0, iterations)
        ctx.layer = layer
        ctx.save_for_backward(x_hat, z)
        return x_hat.view(n, *layer.state_shape)

    @staticmethod
    def backward(ctx, grad_output):
        layer = ctx.layer
        x_hat, z = ctx.saved_tensors
        params = list(layer.net.parameters())
        g = layer.g_rows(z)
        gl = grad_output.reshape(x_hat.shape)
        with torch.enable_grad():
            # One step of g at x^ with grad: its VJPs drive the backward FPI, and give dtheta at the end.
            x_leaf = x_hat.detach().requires_grad_()
            all_rows = torch.arange(x_hat.shape[0], device=x_hat.device)
            full = g(x_leaf, all_rows)
            step = {"rows": all_rows, "x": x_leaf, "gx": full}

            def vjp_map(c, rows):
                if layer.per_sample and 2 * rows.numel() <= step["rows"].numel():
                    x_rows = x_hat.index_select(0, rows).detach().requires_grad_()
                    with torch.enable_grad():  # the solve around this map runs under no_grad
                        step.update(rows=rows, x=x_rows, gx=g(x_rows, rows))
                if rows.numel() == step["rows"].numel():
                    v = torch.autograd.grad(step["gx"], step["x"], c, retain_graph=True)[0]
                else:
                    at = torch.searchsorted(step["rows"], rows)
                    padded = c.new_zeros(step["rows"].numel(), c.shape[1]).index_copy_(0, at, c)
                    v = torch.autograd.grad(step["gx"], step["x"], padded, retain_graph=True)[0].index_select(0, at)
                return v + gl.index_select(0, rows)

            with torch.no_grad():
                c, iterations = solve(vjp_map, gl, layer.backward_options)
            layer.record(1, iterations)
            wanted = params + ([z] if ctx.needs_input_grad[1] else [])
            grads = torch.autograd.grad(full, wanted, c)
        grad_z = grads[-1].view_as(z) if ctx.needs_input_grad[1] else None
        return (None, grad_z, *grads[:len(params)])


def read_manifest(folder):
    """bench_fpi_step --save's manifest: tensors by name (read as float32 files) and settings."""
    import numpy
    tensors, settings, solvers = {}, {}, {"forward": {}, "backward": {}}
    with open(os.path.join(folder, "manifest.txt")) as lines:
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "tensor":
                name, file, shape = parts[1], parts[2], [int(s) for s in parts[3:]]
                values = numpy.fromfile(os.path.join(folder, file), dtype="<f4")
                tensors[name] = torch.from_numpy(values.reshape(shape).copy())
            elif parts[0] == "option":
                which, key = parts[1].split(".", 1)
                solvers[which][key] = parts[2]
            else:
                settings[parts[0]] = parts[1]
    return tensors, settings, solvers


def make_case(name, args, device):
    batch, kind, state_shape, input_shape, loss = CASES[name]
    torch.manual_seed(0)
    net = BibtexMap() if kind == "bibtex" else DenoiseMap()
    forward = backward = DEFAULT_SOLVER[kind]
    per_sample, clip, lr = True, 1.0, 1e-3
    if args.load:
        tensors, settings, solvers = read_manifest(os.path.join(args.load, name))
        # fpi's state-dict names end in the map's own names: "fpi.map.net.fc1.weight" -> "fc1.weight".
        net.load_state_dict({".".join(k.split(".")[-2:]): v for k, v in tensors.items() if k.startswith("fpi.")})
        z, target = tensors["input"], tensors["target"]
        forward, backward = solvers["forward"], solvers["backward"]
        per_sample = settings["per_sample"] == "1"
        clip, lr = float(settings["clip_grad_norm"]), float(settings["lr"])
        if settings["loss"] != loss:
            sys.exit(f"torch_fpi_step: {args.load}/{name} has loss {settings['loss']}, this script computes {loss}")
    elif kind == "bibtex":
        z = (torch.rand(batch, *input_shape) < 0.04).float()  # about Bibtex's density of features and labels
        target = (torch.rand(batch, *state_shape) < 0.015).float()
    else:
        target = torch.rand(batch, *state_shape)
        z = target + torch.randn(batch, *input_shape) * (25.0 / 255.0)
    if args.stop == "batch":
        per_sample = False
    layer = FixedPointLayer(net, state_shape, Solver(forward), Solver(backward), per_sample).to(device)
    return layer, z.to(device), target.to(device), loss, clip, lr


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_syncs(step, steps, device):
    """Synchronising CUDA calls per step, counted from set_sync_debug_mode's warnings."""
    if device.type != "cuda":
        return 0.0
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    synchronize(device)
    return sum("synchroniz" in str(w.message).lower() for w in caught) / steps


def run_case(name, args, device):
    layer, z, target, loss_type, clip, lr = make_case(name, args, device)
    params = list(layer.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    criterion = torch.nn.BCELoss() if loss_type == "bce" else torch.nn.MSELoss()
    last = {}

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(layer(z), target)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        last["loss"] = loss

    for _ in range(args.warmup):
        step()
    layer.reset_stats()
    per_step = []
    for _ in range(args.repeat):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        synchronize(device)
        per_step.append((time.perf_counter() - start) / args.steps)
    calls = layer.calls
    fwd, bwd = (float(s) / calls for s in layer.iteration_sums)
    fwd_max, bwd_max = (int(m) if m is not None else 0 for m in layer.iteration_max)
    loss = last["loss"].item()
    syncs = count_syncs(step, args.sync_steps, device)
    return statistics.median(per_step) * 1e3, min(per_step) * 1e3, fwd, fwd_max, bwd, bwd_max, syncs, loss


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 warm-up step, 2 samples of 2 steps")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the step runs (cuda: cuda:0)")
    parser.add_argument("--case", choices=["all", *CASES], default="all")
    parser.add_argument("--load", metavar="DIR", help="bench_fpi_step --save's folder: fpi's weights, data, settings")
    parser.add_argument("--stop", choices=["per-sample", "batch"], default="per-sample",
                        help="per-sample: the config's stopping rule (default); batch: one residual for the batch")
    parser.add_argument("--threads", type=positive, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--repeat", type=positive, help="timing samples (default 7)")
    parser.add_argument("--steps", type=positive, help="steps per sample (default 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 5)")
    parser.add_argument("--sync-steps", type=positive, default=3, help="steps counted for host synchronisations")
    args = parser.parse_args()
    # As in bench_fpi_step: --quick changes the defaults, a value given on the command line wins.
    for name, full, quick in (("repeat", 7, 2), ("steps", 10, 2), ("warmup", 5, 1)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.warmup < 0:
        parser.error(f"--warmup must be at least 0, got {args.warmup}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_fpi_step: --device cuda, but this PyTorch sees no usable GPU")

    print(f"torch {torch.__version__} FPI_NN training step, float32, device {device}; threads: torch "
          f"{torch.get_num_threads()}, OPENBLAS_NUM_THREADS {os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; "
          f"stop {args.stop}")
    print(f"{args.warmup} warm-up steps, {args.repeat} samples of {args.steps} steps; "
          f"{'batch and weights from ' + args.load if args.load else 'random data and weights'}")
    header = f"{'case':<11} {'ms/step':>10} {'best':>10} {'fwd iters':>10} {'fwd max':>8} {'bwd iters':>10} " \
             f"{'bwd max':>8} {'syncs/step':>11} {'loss':>10}"
    rows = []
    for name in CASES:
        if args.case not in ("all", name):
            continue
        ms, best, fwd, fwd_max, bwd, bwd_max, syncs, loss = run_case(name, args, device)
        rows.append(f"{name:<11} {ms:10.3f} {best:10.3f} {fwd:10.2f} {fwd_max:8d} {bwd:10.2f} {bwd_max:8d} "
                    f"{syncs:11.1f} {loss:10.5f}")
        print(f"result {name} ms {ms:.4f} fwd {fwd:.3f} bwd {bwd:.3f} syncs {syncs:.2f}", flush=True)
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
