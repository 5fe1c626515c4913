"""bench.py train_cost: one layer's training step, time and memory against sequence length (the paper's Figure 1)."""
import torch
from torch import nn

from benchmarks.common import interleaved_medians, median_time, plot, print_table, save, saved_bytes


def mixer_layers(D, device):
    """One layer of each mixer at width D: the model's minGRU/minLSTM/Mamba/attention and PyTorch's GRU/LSTM.
    Mamba has its conv of 4 and d_state 16: at the same hidden width its state is 16x the others'."""
    from model import CausalSelfAttention, GPTConfig, Mamba, MinGRU, MinLSTM
    cfg = GPTConfig(n_embd=D, n_head=max(1, D // 64), expansion=1.0, bias=False)
    torch.manual_seed(0)
    layers = {"minGRU": MinGRU(cfg), "minLSTM": MinLSTM(cfg),
              "Mamba": Mamba(GPTConfig(n_embd=D, mixer="mamba", expansion=1.0, conv=4, bias=False)),
              "GRU": nn.GRU(D, D, batch_first=True), "LSTM": nn.LSTM(D, D, batch_first=True),
              "attention": CausalSelfAttention(cfg)}
    calls = {"minGRU": lambda m, x: m(x)[0], "minLSTM": lambda m, x: m(x)[0], "Mamba": lambda m, x: m(x)[0],
             "GRU": lambda m, x: m(x)[0], "LSTM": lambda m, x: m(x)[0], "attention": lambda m, x: m(x)}
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
        layers, steps = mixer_layers(D, device), {}
        for name, (layer, call) in layers.items():
            def step(layer=layer, call=call, x=x):
                layer.zero_grad(set_to_none=True)
                call(layer, x).float().pow(2).mean().backward()
            steps[name] = step
        if device == "cpu":  # the mixers timed in interleaved rounds; the bytes autograd saves, counted apart
            times = interleaved_medians(steps, repeats=3 if args.quick else 7)
            memory = {name: saved_bytes(lambda layer=layer, call=call, x=x: call(layer, x).float().pow(2).mean())
                      for name, (layer, call) in layers.items()}
        else:  # each mixer alone, for its peak memory
            times, memory = {}, {}
            for name, step in steps.items():
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                times[name] = median_time(step, repeats=3 if args.quick else 5)
                memory[name] = torch.cuda.max_memory_allocated() - base
        results += [{"T": T, "mixer": name, "ms": times[name] * 1e3, "memory_bytes": memory[name]} for name in steps]
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
