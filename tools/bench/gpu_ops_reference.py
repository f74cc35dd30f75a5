"""PyTorch's times for two of bench_gpu_ops's cases, on the same GPU in the same run, so fpi's CUDA
numbers can be read as ratios to a well-known peer: a 4096^3 float32 matmul and a 64->64 3x3
convolution on 16x64x40x40, forward and backward. TF32 is switched off, as fpi computes float32 in
full precision; cuDNN's benchmark mode stays off (PyTorch's default), as fpi uses cuDNN's heuristics.

    python3 tools/bench/gpu_ops_reference.py [--quick]
"""
import sys
import time

import torch


def median_seconds(fn, reps, sample_seconds):
    def timed(calls):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    timed(1)
    calls = max(1, int(sample_seconds / max(timed(1), 1e-6)))
    samples = sorted(timed(calls) / calls for _ in range(reps))
    return samples[len(samples) // 2]


def main():
    quick = "--quick" in sys.argv[1:]
    reps, sample_seconds = (3, 0.0) if quick else (7, 0.2)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda:0")
    gen = torch.Generator(device=dev).manual_seed(0)

    a = torch.randn(4096, 4096, device=dev, generator=gen)
    b = torch.randn(4096, 4096, device=dev, generator=gen)
    matmul_s = median_seconds(lambda: a @ b, reps, sample_seconds)

    x = torch.randn(16, 64, 40, 40, device=dev, generator=gen, requires_grad=True)
    w = (torch.randn(64, 64, 3, 3, device=dev, generator=gen) * 0.05).requires_grad_()
    bias = torch.zeros(64, device=dev, requires_grad=True)
    gy = torch.randn(16, 64, 40, 40, device=dev, generator=gen)

    def conv_step():
        y = torch.nn.functional.conv2d(x, w, bias, padding=1)
        torch.autograd.grad(y, (x, w, bias), gy)

    conv_s = median_seconds(conv_step, reps, sample_seconds)
    conv_gflop = 3 * 2.0 * 16 * 64 * 64 * 9 * 40 * 40 * 1e-9
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name(0)}")
    print(f"{'torch matmul 4096x4096x4096 f32':<38} {matmul_s * 1e3:10.3f} ms  "
          f"{2 * 4096**3 * 1e-9 / matmul_s:8.0f} GFLOP/s")
    print(f"{'torch conv 64->64 3x3, 16x64x40x40 fwd+bwd':<38} {conv_s * 1e3:10.3f} ms  "
          f"{conv_gflop / conv_s:8.0f} GFLOP/s")


if __name__ == "__main__":
    main()
