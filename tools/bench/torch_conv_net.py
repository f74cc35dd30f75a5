#!/usr/bin/python3
"""PyTorch yardstick for bench_conv_net: the same DnCNN-style net (conv 1->C + ReLU, (depth - 2) x
[conv C->C + ReLU], conv C->1, 3x3, padding 1, bias, PyTorch's default init), the same step (forward,
MSE loss, backward, plain SGD with zero_grad(set_to_none=True)), the same timing (median ms/step, with
forward and backward separately) and the same per-layer primitive table.

Run it with Debian's /usr/bin/python3 (the python3 first on PATH cannot see python3-torch). Threads:
--threads N calls torch.set_num_threads(N), which oneDNN's convolutions use. --device cuda runs on cuda:0
with TF32 off (fpi's cuDNN convolutions use FMA math in float32) and cuDNN's algorithm search on (fpi
searches too); each phase then ends with a device synchronisation, as bench_conv_net's do, and the
host synchronisations the step makes besides are counted as torch_fpi_step.py does.
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from torch_fpi_step import count_syncs, synchronize


# Full and --quick defaults, as bench_conv_net has them; a value given on the command line wins over both.
DEFAULTS = {"repeat": (20, 3), "warmup": (3, 1), "batch": (16, 2), "size": (40, 12), "width": (64, 8), "depth": (17, 4)}


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny configuration, a smoke test")
    p.add_argument("--repeat", type=int, help="timed steps")
    p.add_argument("--warmup", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--size", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--f64", action="store_true")
    p.add_argument("--no-layers", action="store_true")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = p.parse_args()
    for name, (full, quick) in DEFAULTS.items():
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else full)
    a.layer_reps = 2 if a.quick else 10
    return a


def make_net(a):
    layers = []
    for i in range(a.depth):
        cin = 1 if i == 0 else a.width
        cout = 1 if i == a.depth - 1 else a.width
        layers.append(torch.nn.Conv2d(cin, cout, 3, padding=1))  # U(±1/sqrt(fan_in)) by default
        if i + 1 < a.depth:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def ms_since(t0):
    return (time.perf_counter() - t0) * 1e3


def train_step(net, opt, x, target):
    synchronize(x.device)
    t0 = time.perf_counter()
    loss = F.mse_loss(net(x), target)
    synchronize(x.device)
    fwd = ms_since(t0)
    t0 = time.perf_counter()
    loss.backward()
    synchronize(x.device)
    bwd = ms_since(t0)
    t0 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    synchronize(x.device)
    return fwd, bwd, ms_since(t0)


def plain_step(net, opt, x, target):
    F.mse_loss(net(x), target).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def median_ms(reps, device, fn):
    fn()
    times = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(ms_since(t0))
    return statistics.median(times)


def time_layers(a, dtype, device):
    print(f"\nper-layer primitives (median of {a.layer_reps}, ms; GFLOP/s in brackets)")
    print(f"  {'layer':<14} {'count':>6} {'forward':>18} {'backward data':>18} {'backward filter':>18}")
    total = 0.0
    for cin, cout, count in ((1, a.width, 1), (a.width, a.width, a.depth - 2), (a.width, 1, 1)):
        if count == 0:
            continue
        x = (torch.rand(a.batch, cin, a.size, a.size, dtype=dtype) * 2 - 1).to(device)
        gy = (torch.rand(a.batch, cout, a.size, a.size, dtype=dtype) * 2 - 1).to(device)
        w = (torch.rand(cout, cin, 3, 3, dtype=dtype) * 2 - 1).to(device)
        flop = 2.0 * a.batch * cout * cin * 9 * a.size * a.size
        conv_backward = lambda mask: torch.ops.aten.convolution_backward(
            gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)
        with torch.no_grad():
            fwd = median_ms(a.layer_reps, device, lambda: F.conv2d(x, w, padding=1))
            bwd_data = median_ms(a.layer_reps, device, lambda: conv_backward([True, False, False]))
            bwd_filter = median_ms(a.layer_reps, device, lambda: conv_backward([False, True, False]))
        cell = lambda ms: f"{ms:8.3f} ({flop / ms * 1e-6:5.1f})"
        print(f"  {f'{cin}->{cout}':<14} {count:>6} {cell(fwd):>18} {cell(bwd_data):>18} {cell(bwd_filter):>18}")
        # The first layer's input needs no gradient, so its backward-data pass never runs in a step.
        total += count * (fwd + bwd_filter + (0 if cin == 1 else bwd_data))
    print(f"  sum over the net's convolutions: {total:.2f} ms/step")


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    device = torch.device("cuda:0" if a.device == "cuda" else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("torch_conv_net: --device cuda, but this PyTorch sees no usable GPU")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1234)
    dtype = torch.float64 if a.f64 else torch.float32
    net = make_net(a).to(dtype).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.rand(a.batch, 1, a.size, a.size, dtype=dtype).to(device)
    target = torch.rand(a.batch, 1, a.size, a.size, dtype=dtype).to(device)
    print(f"torch {torch.__version__} conv net: batch {a.batch}, 1x{a.size}x{a.size}, width {a.width}, "
          f"{a.depth} convs, {dtype}; threads {torch.get_num_threads()} "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')} "
          f"mkldnn {torch.backends.mkldnn.is_available()}")
    for _ in range(a.warmup):
        train_step(net, opt, x, target)
    times = [train_step(net, opt, x, target) for _ in range(a.repeat)]
    totals = [sum(t) for t in times]
    print(f"step     {statistics.median(totals):9.2f} ms (median of {a.repeat}; min {min(totals):.2f})")
    print(f"forward  {statistics.median(t[0] for t in times):9.2f} ms (with the loss)")
    print(f"backward {statistics.median(t[1] for t in times):9.2f} ms")
    print(f"update   {statistics.median(t[2] for t in times):9.2f} ms")
    # The count runs without the phase ends' synchronisations, which are the benchmark's, not the step's.
    syncs = count_syncs(lambda: plain_step(net, opt, x, target), 3, device)
    print(f"host syncs per step {syncs:.2f} (besides one at the end of each phase)")
    if not a.no_layers:
        time_layers(a, dtype, device)


if __name__ == "__main__":
    main()
