"""What the benchmarks share: timing, the machine's description, saving JSON and PNG, printing tables."""
import os
import platform
import statistics
import time

import torch
from tqdm import tqdm

from common import write_json

OUT_DIR = "bench_out"


def median_time(fn, repeats=5, warmup=1):
    """Median wall time of fn() in seconds, synchronising CUDA around each call."""
    return interleaved_medians({"fn": fn}, repeats, warmup)["fn"]


def interleaved_medians(fns, repeats=5, warmup=2):
    """{name: median seconds} of each fn in fns ({name: fn}), timed in rounds, one call of each per round, so that
    the machine's drift during the run falls on all of them alike; CUDA is synchronised around each call."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in tqdm(range(repeats), desc="rounds", disable=None if len(fns) > 1 else True, leave=False):
        for name, fn in fns.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine():
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or
            platform.machine(), "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def out_name(name, device):
    """bench_out/<name> for CPU runs, bench_out/gpu_<name> for CUDA runs, so neither overwrites the other."""
    return f"gpu_{name}" if device == "cuda" else name


def save(name, payload):
    name = out_name(name, payload.get("device"))
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, f"{name}.json")
    write_json(path, {"machine": machine(), **payload})
    print(f"wrote {path}")
    return path


def print_table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def plot(name, title, xlabel, ylabel, series, logx=True, logy=False, points=None, device="cpu"):
    """series: {label: (xs, ys)} drawn as lines; points: {label: (x, y)} drawn as markers."""
    import textwrap
    name = out_name(name, device)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    # one colour per series and per point, never shared; the points (the RNNs beside the GPT's lines) by marker too
    for i, (label, (xs, ys)) in enumerate(series.items()):
        ax.plot(xs, ys, marker="o", markersize=3, label=label, color=f"C{i % 10}")
    for j, (label, (x, y)) in enumerate((points or {}).items()):
        ax.scatter([x], [y], s=70, marker="*DPXs"[j % 5], zorder=3, label=label, color=f"C{(len(series) + j) % 10}")
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(textwrap.fill(title, 70), fontsize=11)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(OUT_DIR, f"{name}.png")
    os.makedirs(OUT_DIR, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def saved_bytes(fn):
    """Bytes of the tensors autograd saves for backward while fn() runs: the activation memory of training."""
    seen = {}

    def pack(t):
        seen[(t.data_ptr(), t.dtype, tuple(t.shape))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
