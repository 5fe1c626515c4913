"""bench.py state_loss: val loss against state bytes, the GPT under each KV-cache policy and size beside the RNNs."""
import os

import torch
from tqdm import tqdm

from benchmarks.common import plot, print_table, save


def stepped_loss(model, x, y, label="", **cache):
    """Mean cross-entropy of model over x, y (n, T), the tokens fed one at a time through model.step from a fresh
    state (for the GPT, a KV cache with the given policy and size), and the state's bytes per sequence at the end."""
    from model import state_nbytes
    n, T = x.shape
    state, total = model.init_state(n, **cache), 0.0
    with torch.no_grad():
        for t in tqdm(range(T), desc=label, leave=False, disable=None):  # a bar on a terminal only
            logits, state = model.step(x[:, t], state)
            total += torch.nn.functional.cross_entropy(logits.double(), y[:, t], reduction="sum").item()
    return total / (n * T), state_nbytes(state) // n


def bench_state_loss(args):
    """Val loss with tokens processed one at a time, GPT under each cache policy and size K, next to the RNNs: over
    the whole val split in non-overlapping windows of --tokens (block_size by default; 16 evenly spaced windows with
    --quick). Past block_size only a GPT with RoPE can go on, and there a bounded cache is what keeps its memory."""
    import numpy as np

    from cache import POLICIES
    from common import dataset_dir, load_checkpoint
    from sample import load_model
    model, _ = load_model(args.gpt, "cpu")
    block = args.tokens or model.config.block_size  # the windows' length
    if block > model.config.block_size and model.learned_positions:
        raise SystemExit(f"--tokens={block} is past the GPT's block_size ({model.config.block_size}), and its learned "
                         f"position table ends there; train it with --pos=rope to measure past block_size")
    ckpt_dataset = load_checkpoint(os.path.join(args.gpt, "ckpt.pt"))["dataset"]
    data = np.memmap(os.path.join(dataset_dir(ckpt_dataset), "val.bin"), dtype=np.uint16, mode="r")
    if len(data) < block + 1:
        raise SystemExit(f"--tokens={block} is longer than the val split ({len(data):,} tokens)")
    if args.quick:
        n_seq = 16
        starts = np.linspace(0, len(data) - block - 2, n_seq).astype(np.int64)  # evenly spaced windows, no RNG
    else:
        n_seq = (len(data) - 1) // block
        starts = np.arange(n_seq) * block
    seqs = torch.stack([torch.from_numpy(data[s:s + block + 1].astype(np.int64)) for s in starts])
    x, y = seqs[:, :-1], seqs[:, 1:]

    Ks = [k for k in (8, 16, 32, 64, 128, 256, 512, 1024) if k < block] + [block]
    results = {"gpt": {}, "rnn": {}}
    rows = []
    full_loss, full_bytes = stepped_loss(model, x, y, "GPT, full cache")
    for policy in [p for p in POLICIES if p != "full"]:
        results["gpt"][policy] = []
        for K in Ks:
            if policy == "sink" and K <= 4:
                continue
            loss, nbytes = (full_loss, full_bytes) if K >= block else stepped_loss(model, x, y, f"GPT, {policy} K={K}",
                                                                                  policy=policy, size=K)
            results["gpt"][policy].append({"K": K, "val_loss": loss, "state_bytes": nbytes})
            rows.append([f"GPT {policy}", K, f"{nbytes:,}", f"{loss:.4f}"])
    for path in args.rnn:
        rnn, _ = load_model(path, "cpu")
        loss, nbytes = stepped_loss(rnn, x, y, rnn.config.mixer)
        results["rnn"][rnn.config.mixer] = {"val_loss": loss, "state_bytes": nbytes, "out_dir": path}
        rows.append([rnn.config.mixer, "", f"{nbytes:,}", f"{loss:.4f}"])
    print(f"val loss over {n_seq} windows of {block} tokens ({n_seq * block:,} tokens), one token at a time; state "
          f"bytes per sequence")
    print_table(["model", "K", "state bytes", "val loss"], rows)
    trained = {"trained_block_size": model.config.block_size} if block != model.config.block_size else {}
    save(args.name, {"gpt_out_dir": args.gpt, "n_seq": n_seq, "block_size": block, **trained, **results})
    draw(args.name, {"block_size": block, **trained, **results})


NAMES = {"window": "window", "sink": "sink", "h2o": "H2O", "tova": "TOVA", "mingru": "minGRU", "minlstm": "minLSTM",
         "mamba": "Mamba"}


def draw(name, data):
    """bench_out/<name>.png from the benchmark's JSON (python bench.py replot state_loss redraws it)."""
    trained = data.get("trained_block_size")
    past = f" (models trained on {trained})" if trained else ""
    plot(name, f"Val loss against state size, {data['block_size']}-token windows{past}: the GPT's bounded KV caches "
         f"and the RNNs' states", "state bytes per sequence", "val loss",
         {f"GPT, {NAMES[p]}": ([r["state_bytes"] for r in rs], [r["val_loss"] for r in rs])
          for p, rs in data["gpt"].items()},
         points={NAMES[m]: (r["state_bytes"], r["val_loss"]) for m, r in data["rnn"].items()})
