"""Golden trajectories for qaware's optimizers, clipping and schedules.

Runs PyTorch 1.13's torch.optim.AdamW, torch.optim.SGD,
torch.nn.utils.clip_grad_norm_ and LambdaLR (with the factor functions of
transformers.get_linear_schedule_with_warmup / get_constant_schedule) on fixed
float32 tensors with fixed gradients, and writes every intermediate result to
tests/data/optim_golden.qawfix (read by tests/optim/*_test.cpp).

Run with Debian's PyTorch:  /usr/bin/python3 tools/gen_optim_golden.py
"""

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qaware_fixture import FixtureWriter  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "optim_golden.qawfix")

# Shapes chosen so that the vectorised loops of PyTorch (8 floats per AVX2
# register) see full vectors and scalar tails: 35 = 4*8 + 3, 64, 12 = 8 + 4.
SHAPES = [(5, 7), (64,), (3, 4)]
STEPS = 6

torch.manual_seed(20240601)


def make_params():
    ps = []
    for i, s in enumerate(SHAPES):
        ps.append(torch.randn(*s, dtype=torch.float32) * (0.5 + i))
    return ps


def make_grads():
    out = []
    for step in range(STEPS):
        gs = []
        for i, s in enumerate(SHAPES):
            g = torch.randn(*s, dtype=torch.float32) * (10.0 ** (i - 1))
            if step == 2:
                g[..., 0] = 0.0  # exact zeros in the middle of the run
            gs.append(g)
        out.append(gs)
    return out


INIT = make_params()
GRADS = make_grads()
w = FixtureWriter()
for i, p in enumerate(INIT):
    w.add(f"init.{i}", p)
for s in range(STEPS):
    for i, g in enumerate(GRADS[s]):
        w.add(f"grad.{s}.{i}", g)


def run(prefix, make_opt, clamp=None, clip=None, sched=None):
    """Steps an optimizer over GRADS; records params after every step.

    clamp: {param index: (min, max)} applied after each step (qaware's group clamp).
    clip: max_norm for clip_grad_norm_ before each step (norm recorded).
    sched: factor function for LambdaLR, stepped after each optimizer step.
    """
    params = [p.clone().requires_grad_(True) for p in INIT]
    opt = make_opt(params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, sched) if sched else None
    for s in range(STEPS):
        for p, g in zip(params, GRADS[s]):
            p.grad = g.clone()
        if clip is not None:
            n = torch.nn.utils.clip_grad_norm_(params, clip)
            w.add(f"{prefix}.norm.{s}", n.reshape(()))
        opt.step()
        if clamp:
            with torch.no_grad():
                for i, (lo, hi) in clamp.items():
                    params[i].clamp_(min=lo, max=hi)
        if scheduler:
            scheduler.step()
        for i, p in enumerate(params):
            w.add(f"{prefix}.param.{s}.{i}", p.detach().clone())
        w.add(f"{prefix}.lr.{s}", torch.tensor([g["lr"] for g in opt.param_groups], dtype=torch.float64))
    for i, p in enumerate(params):
        for k, v in opt.state[p].items():
            if torch.is_tensor(v) and v.dim() > 0:
                w.add(f"{prefix}.state.{i}.{k}", v.clone())
            elif k == "step":
                w.add(f"{prefix}.state.{i}.step", torch.tensor(int(v), dtype=torch.int64))


# AdamW with PyTorch's defaults, one group.
run("adamw_default", lambda ps: torch.optim.AdamW(ps))
# AdamW, two groups: the third tensor is a "scale" group with its own lr, no
# weight decay, clamped to [0.05, 3] after each step.
run("adamw_groups",
    lambda ps: torch.optim.AdamW([{"params": ps[:2]},
                                  {"params": ps[2:], "lr": 0.05, "weight_decay": 0.0}],
                                 lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    clamp={2: (0.05, 3.0)})
run("adamw_amsgrad", lambda ps: torch.optim.AdamW(ps, lr=2e-3, amsgrad=True))
run("adamw_maximize", lambda ps: torch.optim.AdamW(ps, lr=2e-3, maximize=True))
run("sgd_plain", lambda ps: torch.optim.SGD(ps, lr=0.05))
run("sgd_momentum", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=1e-2))
run("sgd_nesterov", lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3))


# transformers' factor functions (copied formulas, see schedule.hpp).
def linear_warmup(warmup, total):
    def f(t):
        if t < warmup:
            return float(t) / float(max(1, warmup))
        return max(0.0, float(total - t) / float(max(1, total - warmup)))
    return f


# The seed's loop: clip at 1.0, AdamW, clamp the scale group, linear schedule.
run("loop",
    lambda ps: torch.optim.AdamW([{"params": ps[:2]},
                                  {"params": ps[2:], "lr": 1e-2, "weight_decay": 0.0}], lr=1e-3),
    clamp={2: (1e-3, None)}, clip=1.0, sched=linear_warmup(2, 5))

# Clipping on its own: clipped (max_norm 1), not clipped (max_norm 1e4), and
# non-finite gradients.
for name, max_norm in [("clip_small", 1.0), ("clip_large", 1e4), ("clip_zero", 0.0)]:
    ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in GRADS[0]]
    for p, g in zip(ps, GRADS[0]):
        p.grad = g.clone()
    n = torch.nn.utils.clip_grad_norm_(ps, max_norm)
    w.add(f"{name}.norm", n.reshape(()))
    for i, p in enumerate(ps):
        w.add(f"{name}.grad.{i}", p.grad.clone())
for name, bad in [("clip_nan", float("nan")), ("clip_inf", float("inf"))]:
    ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in GRADS[0]]
    for p, g in zip(ps, GRADS[0]):
        p.grad = g.clone()
    ps[1].grad[3] = bad
    n = torch.nn.utils.clip_grad_norm_(ps, 1.0)
    w.add(f"{name}.norm", n.reshape(()))
    for i, p in enumerate(ps):
        w.add(f"{name}.grad.{i}", p.grad.clone())

# Schedules on their own: lrs of two groups over 14 steps.
for name, fn in [("sched_linear", linear_warmup(3, 10)), ("sched_linear_nowarm", linear_warmup(0, 7)),
                 ("sched_constant", lambda t: 1.0)]:
    ps = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    opt = torch.optim.AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], lr=1e-3)
    sch = torch.optim.lr_scheduler.LambdaLR(opt, fn)
    lrs = []
    for t in range(14):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sch.step()
    w.add(f"{name}.lr", torch.tensor(lrs, dtype=torch.float64))

w.write(OUT)
