"""
Benchmarks. Each prints a table and writes its numbers to bench_out/<name>.json, and a PNG where there is a plot.

    python bench.py scan [--quick]         forward+backward time of every scan backend, and its error vs float64
    python bench.py train_cost [--quick]   training step time and memory vs sequence length (the paper's Figure 1)
    python bench.py generate [--quick]     ms per token and state bytes vs tokens generated so far
    python bench.py state_loss --gpt DIR --rnn DIR [DIR ...]   val loss vs state bytes, KV-cache policies vs RNNs
    python bench.py throughput [--quick] [--recipe baby]   training tokens/s (MFU on known GPUs), compile off and on

Timings are medians over repeats, taken in one run on one machine; speed-ups are ratios measured in that same run.
On CUDA the outputs are named bench_out/gpu_<name>.json (and .png), beside the CPU ones.
"""
import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch import nn
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


def out_name(name, device):
    """bench_out/<name> for CPU runs, bench_out/gpu_<name> for CUDA runs, so neither overwrites the other."""
    return f"gpu_{name}" if device == "cuda" else name


def save(name, payload):
    name = out_name(name, payload.get("device"))
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


def max_rel_error(backend, log_a, log_b, device="cpu"):
    """Largest relative error of a backend in float32 on device against the float64 loop on the CPU."""
    from scan import scan
    ref = scan(log_a, log_b, backend="reference")
    out = scan(log_a.to(device, torch.float32), log_b.to(device, torch.float32), backend=backend).cpu().double()
    return ((out - ref).abs() / ref.abs()).max().item()


def bench_scan(args):
    from scan import BACKENDS, scan, triton_usable
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    B, D = (4, 64) if args.quick else (16, 256)
    Ts = [256, 512, 1024, 2048, 4096, 16384] if device == "cuda" else [256, 1024, 4096]
    Ts = [256, 1024] if args.quick else Ts
    # Triton's CPU interpreter is for tests, not timings
    timed = triton_usable("cuda") and device == "cuda"
    backends = [b for b in BACKENDS if b != "reference" and (b != "triton" or timed)]
    rows, results = [], []
    print(f"scan forward+backward on {device}, B={B}, D={D}, float32; error on {device} vs the float64 loop at "
          f"B=2, D=16")
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
    save("scan", {"device": device, "B": B, "D": D, "rows": results, "precision_T": T_long, "precision": precision})


def plot(name, title, xlabel, ylabel, series, logx=True, logy=False, points=None, device="cpu"):
    """series: {label: (xs, ys)} drawn as lines; points: {label: (x, y)} drawn as markers."""
    name = out_name(name, device)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    for label, (x, y) in (points or {}).items():
        ax.scatter([x], [y], s=60, marker="*", zorder=3, label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
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


def mixer_layers(D, device):
    """One layer of each mixer at width D: the model's minGRU/minLSTM/attention and PyTorch's GRU/LSTM."""
    from model import CausalSelfAttention, GPTConfig, MinGRU, MinLSTM
    cfg = GPTConfig(n_embd=D, n_head=max(1, D // 64), expansion=1.0, bias=False)
    torch.manual_seed(0)
    layers = {"minGRU": MinGRU(cfg), "minLSTM": MinLSTM(cfg),
              "GRU": nn.GRU(D, D, batch_first=True), "LSTM": nn.LSTM(D, D, batch_first=True),
              "attention": CausalSelfAttention(cfg)}
    calls = {"minGRU": lambda m, x: m(x)[0], "minLSTM": lambda m, x: m(x)[0], "GRU": lambda m, x: m(x)[0],
             "LSTM": lambda m, x: m(x)[0], "attention": lambda m, x: m(x)}
    return {name: (layer.to(device), calls[name]) for name, layer in layers.items()}


def bench_train_cost(args):
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    B = 64 if device == "cuda" else (4 if args.quick else 8)
    D = 128
    Ts = [64, 256, 1024] if args.quick else [64, 128, 256, 512, 1024, 2048, 4096]
    print(f"one layer, forward + loss + backward, on {device}: batch {B}, width {D}, float32")
    results, rows = [], []
    for T in Ts:
        x = torch.randn(B, T, D, device=device, requires_grad=True)
        for name, (layer, call) in mixer_layers(D, device).items():
            def step(layer=layer, call=call, x=x):
                layer.zero_grad(set_to_none=True)
                call(layer, x).float().pow(2).mean().backward()
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            seconds = median_time(step, repeats=3 if args.quick else 5)
            if device == "cuda":
                memory = torch.cuda.max_memory_allocated() - base
            else:
                memory = saved_bytes(lambda layer=layer, call=call, x=x: call(layer, x).float().pow(2).mean())
            results.append({"T": T, "mixer": name, "ms": seconds * 1e3, "memory_bytes": memory})
    by = {(r["T"], r["mixer"]): r for r in results}
    for r in results:
        classic = {"minGRU": "GRU", "minLSTM": "LSTM"}.get(r["mixer"])
        r["speedup_vs_classic"] = by[(r["T"], classic)]["ms"] / r["ms"] if classic else None
        rows.append([r["T"], r["mixer"], f"{r['ms']:.1f}", f"{r['memory_bytes'] / 2**20:.1f}",
                     f"{r['speedup_vs_classic']:.1f}x" if classic else ""])
    memory_kind = "peak MiB" if device == "cuda" else "saved-for-backward MiB"
    print_table(["T", "mixer", "ms/step", memory_kind, "speed-up vs classic"], rows)
    save("train_cost", {"device": device, "B": B, "D": D, "memory": memory_kind, "rows": results})
    names = list(mixer_layers(D, "cpu"))
    plot("train_cost", f"Training step vs sequence length ({device}, B={B}, D={D})", "sequence length T",
         "ms per forward+backward", {n: (Ts, [by[(T, n)]["ms"] for T in Ts]) for n in names}, logy=True,
         device=device)
    if 512 in Ts and 4096 in Ts:  # the paper's Figure 1 quotes these two lengths
        for rnn, classic in (("minGRU", "GRU"), ("minLSTM", "LSTM")):
            print(f"{rnn}: {by[(512, rnn)]['speedup_vs_classic']:.1f}x faster than {classic} at T=512; "
                  f"T=4096 takes {by[(4096, rnn)]['ms'] / by[(512, rnn)]['ms']:.2f}x its T=512 time")


def bench_generate(args):
    from model import GPT, GPTConfig, state_nbytes
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    n_rnn, block = (2048, 512) if args.quick else (16384, 2048)
    marks = [m for m in (64, 256, 1024, 2048, 4096, 8192, 16384) if m <= n_rnn]
    window = 32  # ms per token at mark n: the median over tokens n-window .. n
    base = {"n_layer": 4, "n_head": 4, "n_embd": 128, "vocab_size": 65, "block_size": block}
    runs = {"minGRU": ({"mixer": "mingru", "expansion": 4 / 3}, {}, n_rnn),
            "minLSTM": ({"mixer": "minlstm"}, {}, n_rnn),
            "GPT, full cache": ({"mixer": "attn"}, {}, block),
            "GPT, window 256": ({"mixer": "attn"}, {"policy": "window", "size": 256}, block),
            "GPT, tova 256": ({"mixer": "attn"}, {"policy": "tova", "size": 256}, block)}
    print(f"generation on {device}, batch 1, the CPU recipe's width (4 layers, 128 dims), random weights; "
          f"ms/token is the median over the {window} tokens before each mark")
    results = {}
    for label, (cfg, cache, n) in runs.items():
        torch.manual_seed(0)
        model = GPT(GPTConfig(**base, **cfg)).to(device).eval()
        state, idx, times, sizes = model.init_state(1, **cache), torch.zeros(1, dtype=torch.long, device=device), [], {}
        with torch.no_grad():
            for i in range(1, n + 1):
                t0 = time.perf_counter()
                logits, state = model.step(idx, state)
                idx = logits.argmax(dim=-1)
                if device == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                if i in marks or i == n:
                    sizes[i] = state_nbytes(state)
        results[label] = {m: {"ms": statistics.median(times[m - window:m]) * 1e3, "state_bytes": sizes[m]}
                          for m in sorted(sizes) if m >= window}
    # nanoGPT-style generation runs the whole context again for every token: its cost is one forward at length n
    torch.manual_seed(0)
    model = GPT(GPTConfig(**base, mixer="attn")).to(device).eval()
    results["GPT, re-run context (nanoGPT)"] = {}
    for m in [m for m in marks if m <= block] + ([block] if block not in marks else []):
        x = torch.zeros(1, m, dtype=torch.long, device=device)
        with torch.no_grad():
            ms = median_time(lambda x=x: model(x), repeats=5) * 1e3
        results["GPT, re-run context (nanoGPT)"][m] = {"ms": ms, "state_bytes": 0}
    rows = [[label, n, f"{r['ms']:.2f}", f"{r['state_bytes']:,}"] for label, res in results.items()
            for n, r in res.items()]
    print_table(["model", "tokens so far", "ms/token", "state bytes"], rows)
    for label in ("minGRU", "minLSTM"):
        res = results[label]
        first, last = res[1024] if 1024 in res else res[min(res)], res[max(res)]
        print(f"{label}: ms/token at {max(res)} tokens is {last['ms'] / first['ms']:.2f}x its value at 1024; "
              f"state bytes {'identical' if first['state_bytes'] == last['state_bytes'] else 'DIFFERENT'}")
    save("generate", {"device": device, "results": {k: {str(n): r for n, r in v.items()} for k, v in results.items()}})
    plot("generate", f"Generation cost ({device}, batch 1)", "tokens generated so far", "ms per token",
         {label: (list(res), [r["ms"] for r in res.values()]) for label, res in results.items()}, device=device)


def bench_state_loss(args):
    """Val loss with tokens processed one at a time, GPT under each cache policy and size K, next to the RNNs."""
    import numpy as np

    from cache import POLICIES
    from common import dataset_dir, load_checkpoint
    from model import state_nbytes
    from sample import load_model
    model, _ = load_model(args.gpt, "cpu")
    block = model.config.block_size
    ckpt_dataset = load_checkpoint(os.path.join(args.gpt, "ckpt.pt"))["dataset"]
    data = np.memmap(os.path.join(dataset_dir(ckpt_dataset), "val.bin"), dtype=np.uint16, mode="r")
    n_seq = 16 if args.quick else 128
    starts = np.linspace(0, len(data) - block - 2, n_seq).astype(np.int64)  # evenly spaced windows, no RNG
    seqs = torch.stack([torch.from_numpy(data[s:s + block + 1].astype(np.int64)) for s in starts])
    x, y = seqs[:, :-1], seqs[:, 1:]

    def stepped_loss(model, **cache):
        state, total = model.init_state(n_seq, **cache), 0.0
        with torch.no_grad():
            for t in range(block):
                logits, state = model.step(x[:, t], state)
                total += torch.nn.functional.cross_entropy(logits, y[:, t], reduction="sum").item()
        return total / (n_seq * block), state_nbytes(state) // n_seq

    Ks = [k for k in (8, 16, 32, 64, 128) if k < block] + [block]
    results = {"gpt": {}, "rnn": {}}
    rows = []
    full_loss, full_bytes = stepped_loss(model)
    for policy in [p for p in POLICIES if p != "full"]:
        results["gpt"][policy] = []
        for K in Ks:
            if policy == "sink" and K <= 4:
                continue
            loss, nbytes = (full_loss, full_bytes) if K >= block else stepped_loss(model, policy=policy, size=K)
            results["gpt"][policy].append({"K": K, "val_loss": loss, "state_bytes": nbytes})
            rows.append([f"GPT {policy}", K, f"{nbytes:,}", f"{loss:.4f}"])
    for path in args.rnn:
        rnn, _ = load_model(path, "cpu")
        loss, nbytes = stepped_loss(rnn)
        results["rnn"][rnn.config.mixer] = {"val_loss": loss, "state_bytes": nbytes, "out_dir": path}
        rows.append([rnn.config.mixer, "", f"{nbytes:,}", f"{loss:.4f}"])
    print(f"val loss over {n_seq} windows of {block} tokens, one token at a time; state bytes per sequence")
    print_table(["model", "K", "state bytes", "val loss"], rows)
    save("state_loss", {"gpt": args.gpt, "n_seq": n_seq, "block_size": block, **results})
    plot("state_loss", "Val loss against state size: bounded KV caches and RNNs", "state bytes per sequence",
         "val loss", {f"GPT {p}": ([r["state_bytes"] for r in rs], [r["val_loss"] for r in rs])
                      for p, rs in results["gpt"].items()},
         points={m: (r["state_bytes"], r["val_loss"]) for m, r in results["rnn"].items()})


RECIPES = {"cpu": "config/shakespeare_char_cpu_{}.py", "baby": "config/shakespeare_char_{}.py"}


def bench_throughput(args):
    import scan as scan_module
    import train
    from configurator import parse_config
    from model import GPT, GPTConfig
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    # (compile, dtype): on CUDA eager float32, eager bf16 and compiled bf16 (the baby configs' dtype=auto)
    # (compile, dtype, scan backend or None for the default)
    variants = [(False, "float32", None), (False, "bfloat16", None), (True, "bfloat16", None)] if device == "cuda" \
        else [(False, "float32", None), (True, "float32", None)]
    rows, results, original = [], [], scan_module.DEFAULT_BACKEND
    for mixer in ("gpt", "mingru", "minlstm"):
        c = parse_config(train.Config, [RECIPES[args.recipe].format(mixer)])
        cfg = GPTConfig(**{k: getattr(c, k) for k in train.MODEL_KEYS if k != "vocab_size"}, vocab_size=65)
        B, T = c.batch_size, c.block_size
        scan_module.DEFAULT_BACKEND = original
        default = scan_module.default_backend(device, T)
        extra = [(True, "bfloat16", "log")] if device == "cuda" and mixer != "gpt" and default != "log" else []
        for compiled, dtype, backend in variants + extra:
            scan_module.DEFAULT_BACKEND = backend or original
            torch.manual_seed(0)
            raw = GPT(cfg).to(device)
            model = torch.compile(raw) if compiled else raw
            opt = raw.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2), device)
            x = torch.randint(0, 65, (B, T), device=device)
            autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

            def step(model=model, opt=opt, x=x, autocast=autocast):
                with autocast:
                    _, loss = model(x, x)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            try:
                seconds = median_time(step, repeats=5 if args.quick else 50, warmup=5)
            except Exception as e:  # torch.compile needs a working compiler toolchain; report, don't crash
                print(f"{mixer} compile={compiled}: failed ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
                continue
            tok_s = B * T / seconds
            mfu = raw.estimate_mfu(B, seconds)
            backend = "" if mixer == "gpt" else backend or default
            results.append({"mixer": cfg.mixer, "compile": compiled, "dtype": dtype, "scan": backend,
                            "tokens_per_s": tok_s, "ms_per_iter": seconds * 1e3,
                            "tflops": raw.flops_per_token() * tok_s / 1e12, "mfu": mfu})
            rows.append([cfg.mixer, compiled, dtype, backend, f"{seconds * 1e3:.2f}", f"{tok_s:,.0f}",
                         f"{raw.flops_per_token() * tok_s / 1e9:.1f}", "n/a" if mfu is None else f"{mfu:.1%}"])
    print(f"training step (forward, backward, AdamW) on {device}, the {args.recipe} configs' shapes "
          f"({RECIPES[args.recipe].format('*')}); MFU only where the peak FLOP/s is known")
    scan_module.DEFAULT_BACKEND = original
    print_table(["mixer", "compile", "dtype", "scan", "ms/iter", "tokens/s", "GFLOP/s", "MFU"], rows)
    best = {m: min(r["ms_per_iter"] for r in results if r["mixer"] == m) for m in {r["mixer"] for r in results}}
    if "attn" in best:
        print("each mixer at its fastest setting, ms/iter against the GPT's: " +
              ", ".join(f"{m} {best[m] / best['attn']:.2f}x" for m in ("mingru", "minlstm") if m in best))
    name = "throughput" if args.recipe == "cpu" else f"throughput_{args.recipe}"
    save(name, {"device": device, "recipe": args.recipe, "rows": results})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    p = sub.add_parser("scan", help="scan backends: speed and precision")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is present")
    p.set_defaults(fn=bench_scan)
    for name, fn, help_text in [("train_cost", bench_train_cost, "training step time and memory vs length"),
                                ("generate", bench_generate, "ms per token and state bytes vs length"),
                                ("throughput", bench_throughput, "training tokens/s, compile off and on")]:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
        p.add_argument("--cpu", action="store_true", help="stay on the CPU even when CUDA is present")
        p.set_defaults(fn=fn)
        if name == "throughput":
            p.add_argument("--recipe", choices=list(RECIPES), default="cpu",
                           help="the configs whose shapes to time: cpu (block 64) or baby (block 256, 6 layers)")
    p = sub.add_parser("state_loss", help="val loss vs state bytes: KV-cache policies and RNNs")
    p.add_argument("--gpt", required=True, help="out_dir of a trained GPT checkpoint")
    p.add_argument("--rnn", nargs="*", default=[], help="out_dirs of trained minGRU/minLSTM checkpoints")
    p.add_argument("--quick", action="store_true", help="fewer val windows")
    p.set_defaults(fn=bench_state_loss)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
