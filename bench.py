"""
Benchmarks. Each prints a table and writes its numbers to bench_out/<name>.json (and a PNG where there is a plot).

    python bench.py scan [--quick]    forward+backward time of every scan backend, and its error against float64

Timings are medians over repeats, taken in one run on one machine; speed-ups are ratios measured in that same run.
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch.nn import functional as F

OUT_DIR = "bench_out"


def median_time(fn, repeats=5, warmup=1):
    """Median wall time of fn() in seconds, synchronising CUDA around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine():
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or
            platform.machine(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def save(name, payload):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump({"machine": machine(), **payload}, f, indent=2)
    print(f"wrote {path}")
    return path


def print_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def scan_inputs(B, T, D, device="cpu", dtype=torch.float32, seed=0):
    """minGRU-like inputs: gate logits ~ N(0, 4^2), log_a = log(1 - z), log_b = log(z) + log(h~)."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(B, T, D, generator=gen, dtype=torch.float64) * 4
    log_a, log_b = -F.softplus(k), -F.softplus(-k) + torch.randn(B, T, D, generator=gen, dtype=torch.float64)
    return log_a.to(device, dtype), log_b.to(device, dtype)


def max_rel_error(backend, log_a, log_b):
    from scan import scan
    ref = scan(log_a, log_b, backend="reference")
    out = scan(log_a.float(), log_b.float(), backend=backend).double()
    return ((out - ref).abs() / ref.abs()).max().item()


def bench_scan(args):
    from scan import BACKENDS, scan
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    B, D = (4, 64) if args.quick else (16, 256)
    Ts = [256, 1024] if args.quick else [256, 1024, 4096]
    backends = [b for b in BACKENDS if b != "reference"]
    rows, results = [], []
    print(f"scan forward+backward on {device}, B={B}, D={D}, float32; error vs the float64 loop at B=2, D=16")
    for T in Ts:
        log_a, log_b = scan_inputs(B, T, D, device)
        log_a.requires_grad_()
        log_b.requires_grad_()
        small = scan_inputs(2, T, 16, dtype=torch.float64, seed=1)
        times = {}
        for backend in backends:
            def run(backend=backend, log_a=log_a, log_b=log_b):
                h = scan(log_a, log_b, backend=backend)
                torch.autograd.grad(h.sum(), (log_a, log_b))
            times[backend] = median_time(run, repeats=3 if args.quick else 5)
        for backend in backends:
            err = max_rel_error(backend, *small)
            ratio = times["log"] / times[backend]
            rows.append([T, backend, f"{times[backend] * 1e3:.1f}", f"{ratio:.1f}x", f"{err:.1e}"])
            results.append({"T": T, "backend": backend, "ms": times[backend] * 1e3, "speedup_vs_log": ratio,
                            "max_rel_err": err})
    print_table(["T", "backend", "fwd+bwd ms", "vs log", "max rel err"], rows)
    T_long = 4096 if args.quick else 16384
    print(f"\nfloat32 precision at T={T_long}, gate logits ~ N(0, 4^2), B=1, D=8")
    long_inputs = scan_inputs(1, T_long, 8, dtype=torch.float64, seed=2)
    precision = {b: max_rel_error(b, *long_inputs) for b in backends}
    print_table(["backend", "max rel err"], [[b, f"{e:.1e}"] for b, e in precision.items()])
    save("scan", {"device": device, "B": B, "D": D, "rows": results, "precision_T": T_long, "precision": precision})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    p = sub.add_parser("scan", help="scan backends: speed and precision")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is present")
    p.set_defaults(fn=bench_scan)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
