"""bench.py generate: ms per token and state bytes against the number of tokens generated so far."""
import statistics
import time

import torch

from benchmarks.common import median_time, plot, print_table, save


def bench_generate(args):
    from model import GPT, GPTConfig, state_nbytes
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    n_rnn, block = (2048, 512) if args.quick else (16384, 2048)
    marks = [m for m in (64, 256, 1024, 2048, 4096, 8192, 16384) if m <= n_rnn]
    window = 32  # ms per token at mark n: the median over tokens n-window .. n
    base = {"n_layer": 4, "n_head": 4, "n_embd": 128, "vocab_size": 65, "block_size": block}
    runs = {"minGRU": ({"mixer": "mingru", "expansion": 4 / 3}, {}, n_rnn),
            "minLSTM": ({"mixer": "minlstm"}, {}, n_rnn),
            "Mamba": ({"mixer": "mamba", "expansion": 1.125, "conv": 4}, {}, n_rnn),
            "GPT, full cache": ({"mixer": "attn"}, {}, block),
            "GPT, window 256": ({"mixer": "attn"}, {"policy": "window", "size": 256}, block),
            "GPT, tova 256": ({"mixer": "attn"}, {"policy": "tova", "size": 256}, block),
            "GPT, h2o 256": ({"mixer": "attn"}, {"policy": "h2o", "size": 256}, block)}
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
    for label in ("minGRU", "minLSTM", "Mamba"):
        res = results[label]
        first, last = res[1024] if 1024 in res else res[min(res)], res[max(res)]
        print(f"{label}: ms/token at {max(res)} tokens is {last['ms'] / first['ms']:.2f}x its value at 1024; "
              f"state bytes {'identical' if first['state_bytes'] == last['state_bytes'] else 'DIFFERENT'}")
    data = {"device": device, "results": {k: {str(n): r for n, r in v.items()} for k, v in results.items()}}
    save("generate", data)
    draw("generate", data)


def draw(name, data):
    """bench_out/<name>.png from the benchmark's JSON (python bench.py replot generate redraws it). Log-log: the
    RNNs' flat cost and the GPT's growing one span two orders of magnitude."""
    plot(name, f"Generation cost per token ({data['device']}, batch 1)", "tokens generated so far", "ms per token",
         {label: ([int(n) for n in res], [r["ms"] for r in res.values()]) for label, res in data["results"].items()},
         logy=True, device=data["device"])
