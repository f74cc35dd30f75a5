# Reference values for tests/optim/test_optim.cpp, computed with PyTorch 1.13 (CPU, float64).
# Run with the Python that sees torch: /usr/bin/python3 tests/reference/optim_reference.py
# The gradients are built with math.sin, which is glibc's sin like std::sin in the C++ test, so both
# sides feed the optimizers bit-identical inputs.
import math

import torch

torch.set_default_dtype(torch.float64)

P0 = [0.5, -1.0, 2.0, 0.25]
STEPS = 6


def grad_at(step):
    # A large first gradient followed by smaller ones makes exp_avg_sq shrink, so amsgrad matters.
    scale = 3.0 if step == 0 else 1.0
    return torch.tensor([scale * math.sin(1.3 * i + 0.7 * step + 0.2) for i in range(4)]).reshape(2, 2)


def run(make):
    p = torch.tensor(P0).reshape(2, 2).requires_grad_()
    opt = make([p])
    for step in range(STEPS):
        p.grad = grad_at(step)
        opt.step()
    return p.detach().flatten().tolist()


def show(name, values):
    print(f"{name}: {{{', '.join(repr(v) for v in values)}}}")


cases = {
    "sgd_plain": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "sgd_weight_decay": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, weight_decay=0.1),
    "sgd_dampening": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.1),
    "adam_weight_decay": lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adam_amsgrad": lambda ps: torch.optim.Adam(ps, lr=0.1, amsgrad=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1),
    "adamw_amsgrad": lambda ps: torch.optim.AdamW(ps, lr=0.1, weight_decay=0.5, amsgrad=True),
}
print("# optimizers: parameter after", STEPS, "steps from", P0)
for name, make in cases.items():
    show(name, run(make))
assert run(cases["adam"]) != run(cases["adam_amsgrad"]), "amsgrad must change the result"

print("# clip_grad_norm: total norm, then the clipped gradients of a (3) and b (2, 2)")
for norm_type, max_norm in [(2.0, 1.0), (1.0, 2.0), (3.0, 0.5), (math.inf, 0.7), (2.0, 100.0)]:
    a = torch.tensor([0.3, -1.2, 2.5]).requires_grad_()
    b = torch.tensor([[1.5, -0.4], [0.0, -2.2]]).requires_grad_()
    a.grad = a.detach().clone()
    b.grad = b.detach().clone()
    total = torch.nn.utils.clip_grad_norm_([a, b], max_norm, norm_type).item()
    show(f"clip norm_type={norm_type} max_norm={max_norm} total={total!r}", a.grad.tolist() + b.grad.flatten().tolist())


def schedule_lrs(make, epochs):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    return lrs


print("# schedules: lr after construction, then after each step(), base lr 0.1")
show("multistep milestones={2,5,5,8} gamma=0.5",
     schedule_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 5, 8], gamma=0.5), 10))
show("cosine T_max=4 eta_min=0.01",
     schedule_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.01), 13))
