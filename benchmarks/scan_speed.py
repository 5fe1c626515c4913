"""bench.py scan: forward+backward time of every scan backend, and its float32 error against the float64 loop."""
from functools import partial

import torch
from torch.nn import functional as F

from benchmarks.common import interleaved_medians, print_table, save


def scan_inputs(B, T, D, device="cpu", dtype=torch.float32, seed=0):
    """minGRU-like inputs: gate logits ~ N(0, 4^2), log_a = log(1 - z), log_b = log(z) + log(h~)."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(B, T, D, generator=gen, dtype=torch.float64) * 4
    log_a, log_b = -F.softplus(k), -F.softplus(-k) + torch.randn(B, T, D, generator=gen, dtype=torch.float64)
    return log_a.to(device, dtype), log_b.to(device, dtype)


def max_rel_error(backend, log_a, log_b, device="cpu"):
    """Largest relative error of a backend in float32 on device against the float64 loop on the CPU."""
    from scan import scan
    ref = scan(log_a, log_b, backend="reference")
    out = scan(log_a.to(device, torch.float32), log_b.to(device, torch.float32), backend=backend).cpu().double()
    return ((out - ref).abs() / ref.abs()).max().item()


def bench_scan(args):
    from scan import BACKENDS, c_usable, scan, triton_usable
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    B, D = (4, 64) if args.quick else (16, 256)
    Ts = [256, 512, 1024, 2048, 4096, 16384] if device == "cuda" else [256, 1024, 4096]
    Ts = [256, 1024] if args.quick else Ts
    # Triton's CPU interpreter is for tests, not timings
    timed = triton_usable("cuda") and device == "cuda"
    backends = [b for b in BACKENDS if b != "reference" and (b != "triton" or timed) and (b != "c" or c_usable(device))]
    rows, results = [], []
    print(f"scan forward+backward on {device}, B={B}, D={D}, float32; error on {device} vs the float64 loop at "
          f"B=2, D=16")
    for T in Ts:
        log_a, log_b = scan_inputs(B, T, D, device)
        log_a.requires_grad_()
        log_b.requires_grad_()
        small = scan_inputs(2, T, 16, dtype=torch.float64, seed=1)
        runs = {}
        for backend in backends:
            def run(backend=backend, log_a=log_a, log_b=log_b):
                h = scan(log_a, log_b, backend=backend)
                torch.autograd.grad(h.sum(), (log_a, log_b))
            runs[backend] = run
        times = interleaved_medians(runs, repeats=3 if args.quick else 7)
        for backend in backends:
            err = max_rel_error(backend, *small, device=device)
            ratio = times["log"] / times[backend]
            rows.append([T, backend, f"{times[backend] * 1e3:.1f}", f"{ratio:.1f}x", f"{err:.1e}"])
            results.append({"T": T, "backend": backend, "ms": times[backend] * 1e3, "speedup_vs_log": ratio,
                            "max_rel_err": err})
    print_table(["T", "backend", "fwd+bwd ms", "vs log", "max rel err"], rows)
    T_long = 4096 if args.quick else 16384
    print(f"\nfloat32 precision at T={T_long}, gate logits ~ N(0, 4^2), B=1, D=8")
    long_inputs = scan_inputs(1, T_long, 8, dtype=torch.float64, seed=2)
    precision = {b: max_rel_error(b, *long_inputs, device=device) for b in backends}
    print_table(["backend", "max rel err"], [[b, f"{e:.1e}"] for b, e in precision.items()])
    cells = bench_cells(args) if device == "cpu" else []
    save("scan", {"device": device, "B": B, "D": D, "rows": results, "precision_T": T_long, "precision": precision,
                  "cells": cells})


def bench_cells(args):
    """The CPU's cells: kernels/cpu.c's (what runs where model.py is as shipped) against model.py's definition, its
    gates as PyTorch ops, then scan_linear by the c backend (what runs after an edit that makes the cell step aside)
    or by the chunked one (C_KERNELS=0): forward + backward of one layer's gates and scan, at the CPU configs'
    widths (minGRU 171, minLSTM 128), batch 12."""
    from kernels import build, cells
    from model import GPTConfig, MinGRU, MinLSTM
    from scan import c_usable, scan_linear
    forms = (["C"] if build.available() else []) + (["ops + c scan"] if c_usable("cpu") else []) + ["ops + chunked"]
    rows, results = [], []
    for T in ([64] if args.quick else [64, 1024]):
        for name, cls, parts, H in (("mingru", MinGRU, 2, 171), ("minlstm", MinLSTM, 3, 128)):
            kh = torch.randn(12, T, parts * H, generator=torch.Generator().manual_seed(0), requires_grad=True)
            gates = cls(GPTConfig(n_embd=H, n_head=1, mixer=name)).gates
            fns = {"C": partial(cells.cell, name),
                   "ops + c scan": lambda kh, gates=gates: scan_linear(*gates(kh), backend="c"),
                   "ops + chunked": lambda kh, gates=gates: scan_linear(*gates(kh), backend="chunked")}
            runs = {form: partial(lambda fn, kh: torch.autograd.grad(fn(kh).sum(), kh), fns[form], kh)
                    for form in forms}
            times = interleaved_medians(runs, repeats=5 if args.quick else 50)
            base = times["ops + chunked"]
            rows.append([name, T] + [f"{times[f] * 1e3:.2f} ({base / times[f]:.2f}x)" for f in forms])
            results.append({"cell": name, "T": T, "H": H, **{f"{f.replace(' + ', '_').replace(' ', '_')}_ms":
                                                             times[f] * 1e3 for f in forms}})
    print("\nthe CPU's cells, gates and scan forward+backward, B=12, float32: cpu.c's cell and model.py's definition "
          "(speed-up over the definition with the chunked scan)")
    print_table(["cell", "T"] + [f"{f} ms" for f in forms], rows)
    return results
