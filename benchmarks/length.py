"""bench.py length: loss by position far past the training length. The RNNs read each stretch of the val split in
one pass, carrying their state from chunk to chunk, and so does a RoPE GPT (pos='rope'), its full KV cache growing.
Every GPT also re-runs a sliding window of its block_size: the baseline, a context that never grows, on the same
passages (for a GPT with learned positions, which cannot pass its block_size, the only reading)."""
import os

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.common import plot, print_table, save


def stretches(dataset, tokens, stride):
    """Stretches of `tokens` val tokens starting every `stride` tokens, x (S, tokens), with next-token targets y.
    Overlapping starts put many different texts at each position, so that a position bucket's loss measures the
    position, not the few passages that happen to fall there."""
    from common import dataset_dir
    data = np.memmap(os.path.join(dataset_dir(dataset), "val.bin"), dtype=np.uint16, mode="r")
    if len(data) < tokens + 1:
        raise SystemExit(f"the val split has {len(data):,} tokens, fewer than --tokens={tokens} + 1; ask for fewer")
    seq = torch.from_numpy(data.astype(np.int64))
    starts = torch.arange(0, len(data) - tokens, stride)
    idx = starts[:, None] + torch.arange(tokens + 1)  # (S, tokens + 1)
    return seq[idx[:, :-1]], seq[idx[:, 1:]]


def carried_losses(model, x, y, chunk, batch=32):
    """Cross-entropy at every position (S, L) of one pass over x, chunk by chunk (prefill) with the state carried,
    `batch` stretches at a time (a GPT's attention over a long cache holds batch x heads x chunk x L weights)."""
    rows = []
    with torch.no_grad():
        for first in range(0, x.size(0), batch):
            xb, yb = x[first:first + batch], y[first:first + batch]
            state, out = model.init_state(xb.size(0)), []
            for start in range(0, x.size(1), chunk):
                logits, state = model.prefill(xb[:, start:start + chunk], state)
                out.append(F.cross_entropy(logits.transpose(1, 2), yb[:, start:start + chunk], reduction="none"))
            rows.append(torch.cat(out, dim=1))
    return torch.cat(rows)


def sliding_losses(model, x, y, stride):
    """Cross-entropy at every position (S, L) of a model re-run on windows of block_size tokens starting every
    `stride`: each window scores the positions no earlier window did, so every position past the first window
    sees at least block_size - stride tokens of context."""
    block, L = min(model.config.block_size, x.size(1)), x.size(1)
    starts = list(range(0, L - block + 1, stride))
    if starts[-1] + block < L:
        starts.append(L - block)
    losses, scored = None, 0
    with torch.no_grad():
        for s in starts:
            logits, _ = model(x[:, s:s + block], y[:, s:s + block])
            ce = F.cross_entropy(logits.transpose(1, 2), y[:, s:s + block], reduction="none")
            losses = ce.new_empty(x.shape) if losses is None else losses
            losses[:, scored:s + block] = ce[:, scored - s:]
            scored = s + block
    return losses


def buckets(per_position, train_len):
    """Mean loss over position ranges in units of the training length: [0, T/2), [T/2, T), [T, 2T), [2T, 4T), ..."""
    L, edges = len(per_position), [0, train_len // 2, train_len]
    while edges[-1] < L:
        edges.append(min(2 * edges[-1], L))
    return [{"from": a, "to": b, "loss": per_position[a:b].mean().item()} for a, b in zip(edges, edges[1:]) if b > a]


def bench_length(args):
    from common import load_checkpoint
    from sample import load_model
    results, rows, stride = {}, [], args.stride or args.tokens // 8
    for path in args.rnn + args.gpt:
        model, _ = load_model(path, "cpu")
        c = model.config
        dataset = load_checkpoint(os.path.join(path, "ckpt.pt"))["dataset"]
        if args.tokens < 2 * c.block_size:
            raise SystemExit(f"{path} was trained at block_size {c.block_size}; --tokens must be at least twice that")
        x, y = stretches(dataset, args.tokens, stride)
        readings = []  # (label, how, per-position loss): one pass where the model can go on, a GPT's re-runs too
        if not model.learned_positions:
            how = f"one pass, {'KV cache' if c.mixer == 'attn' else 'state'} carried over chunks of {args.chunk}"
            readings.append((f"{c.mixer}, trained at {c.block_size}", how, carried_losses(model, x, y, args.chunk)))
        if c.mixer == "attn":  # the baseline: a context that never grows, on the same passages
            window = max(1, c.block_size // 2)
            how = f"sliding window of {c.block_size}, stride {window}"
            readings.append((f"attn (sliding window), trained at {c.block_size}", how,
                             sliding_losses(model, x, y, stride=window)))
        for label, how, losses in readings:
            per_pos = losses.mean(dim=0)
            bs = buckets(per_pos, c.block_size)
            ref = next(b["loss"] for b in bs if b["to"] == c.block_size)  # [T/2, T): the trained length's 2nd half
            # flat past the training length: the spread of the bucket losses from T out to 8T
            beyond = [b["loss"] for b in bs if b["from"] >= c.block_size and b["to"] <= 8 * c.block_size]
            spread = max(beyond) - min(beyond) if beyond else None
            results[label] = {"out_dir": path, "mixer": c.mixer, "block_size": c.block_size, "how": how,
                              "stretches": x.size(0), "buckets": bs, "spread_T_to_8T": spread,
                              "per_position": [round(v, 5) for v in per_pos.tolist()]}
            for b in bs:
                rows.append([label, f"[{b['from']}, {b['to']})", f"{b['loss']:.4f}", f"{b['loss'] - ref:+.4f}"])
            print(f"{label}: {x.size(0)} stretches of {args.tokens} tokens, {how}; spread of the loss over [T, 8T): "
                  f"{'n/a' if spread is None else f'{spread:.4f}'} nats")
    print_table(["model", "positions", "val loss", "vs [T/2, T)"], rows)
    save("length", {"tokens": args.tokens, "stride": stride, "chunk": args.chunk, "results": results})
    draw("length", {"tokens": args.tokens, "results": results})


def draw(name, data):
    """bench_out/<name>.png from the benchmark's JSON (python bench.py replot length redraws it): per-position
    losses averaged over geometric position buckets."""
    names = {"attn": "GPT", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}
    series = {}
    for label, r in data["results"].items():
        _, _, rest = label.partition(",")
        sliding = " (sliding window)" if r["how"].startswith("sliding") else ""
        label = names.get(r["mixer"], r["mixer"]) + sliding + ("," + rest if rest else "")
        pp = torch.tensor(r["per_position"])
        edges = [0] + [2 ** k for k in range(3, 64) if 2 ** k < len(pp)] + [len(pp)]
        series[label] = ([(a + b) / 2 for a, b in zip(edges, edges[1:])],
                         [pp[a:b].mean().item() for a, b in zip(edges, edges[1:])])
    plot(name, f"Val loss by position ({data['tokens']}-token stretches)", "position in the stretch",
         "val loss (mean over stretches and bucket)", series)
