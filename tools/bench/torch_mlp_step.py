"""PyTorch's side of the MLP training-step benchmark (tools/bench/mlp_step.cpp is fpi's): the same net
(Linear(1995, 600), ReLU, Linear(600, 159), Sigmoid), BCELoss against 0/1 targets, Adam(lr=1e-3),
batch 40, float32, and the same timing method: warm-up steps, then `repeat` samples of `steps` steps,
reporting the median and best ms/step and a forward / backward / optimizer split. Gradients are
cleared with zero_grad(set_to_none=True), which is what fpi's zero_grad does and the faster of
torch's two ways (1.13's default zeroes them in place, then adds the new gradient into them).

Run it with Debian's interpreter, which sees python3-torch (1.13):
    /usr/bin/python3 tools/bench/torch_mlp_step.py [--quick] [--threads N] [--repeat N] [--steps N] [--device cpu|cuda]
--threads sets torch.set_num_threads; OpenBLAS, which torch's linear layers call here, takes its own
thread count from OPENBLAS_NUM_THREADS. --device cuda runs on cuda:0 with TF32 off (fpi's cuBLAS calls
use plain float32), synchronises at each sample's ends, and counts the host synchronisations per step
as torch_fpi_step.py does.
"""
import argparse
import os
import statistics
import time

import torch

from torch_fpi_step import count_syncs, positive, synchronize

BATCH, IN, HIDDEN, OUT = 40, 1995, 600, 159


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 warm-up steps, 3 samples of 3 steps")
    parser.add_argument("--threads", type=positive, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeat", type=positive, help="timing samples (default 15)")
    parser.add_argument("--steps", type=positive, help="steps per sample (default 40)")
    parser.add_argument("--warmup", type=positive, help="untimed steps first (default 20)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the step runs (cuda: cuda:0)")
    args = parser.parse_args()
    # As in bench_mlp_step: --quick changes the defaults, a value given on the command line wins.
    for name, full in (("repeat", 15), ("steps", 40), ("warmup", 20)):
        if getattr(args, name) is None:
            setattr(args, name, 3 if args.quick else full)

    torch.set_num_threads(args.threads)
    device = torch.device("cuda:0" if args.device == "cuda" else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch_mlp_step: --device cuda, but this PyTorch sees no usable GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, OUT),
                              torch.nn.Sigmoid()).to(device)
    x = torch.rand(BATCH, IN).to(device)
    y = (torch.rand(BATCH, OUT) < 0.1).float().to(device)
    criterion = torch.nn.BCELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(phases):
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(net(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        if phases is not None:
            t3 = time.perf_counter()
            phases[0] += t1 - t0
            phases[1] += t2 - t1
            phases[2] += t3 - t2
        return loss

    for _ in range(args.warmup):
        step(None)
    per_step, splits = [], []
    for _ in range(args.repeat):
        phases = [0.0, 0.0, 0.0]
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step(phases)
        synchronize(device)
        per_step.append((time.perf_counter() - start) / args.steps)
        splits.append([p / args.steps * 1e3 for p in phases])

    syncs = count_syncs(lambda: step(None), 3, device)
    print(f"torch {torch.__version__} MLP training step: {IN} -> {HIDDEN} -> {OUT}, batch {BATCH}, BCE, Adam, float32, "
          f"{device}")
    print(f"threads: torch {torch.get_num_threads()}, OPENBLAS_NUM_THREADS "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset (all cores)')}")
    print(f"{args.warmup} warm-up steps, {args.repeat} samples of {args.steps} steps")
    print(f"ms/step median {statistics.median(per_step) * 1e3:.4f} best {min(per_step) * 1e3:.4f}")
    forward, backward, optim = (statistics.median(s[i] for s in splits) for i in range(3))
    print(f"split (median ms): forward+loss {forward:.4f} backward {backward:.4f} optimizer {optim:.4f}")
    print(f"host syncs per step {syncs:.2f}")
    print(f"loss after {args.warmup + args.repeat * args.steps} steps {loss.item():.6f}")


if __name__ == "__main__":
    main()
