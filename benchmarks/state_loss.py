"""bench.py state_loss: val loss against state bytes, the GPT under each KV-cache policy and size beside the RNNs."""
import os

import torch
from tqdm import tqdm

from benchmarks.common import plot, print_table, save


def bench_state_loss(args):
    """Val loss with tokens processed one at a time, GPT under each cache policy and size K, next to the RNNs: over
    the whole val split in non-overlapping block_size windows (16 evenly spaced windows with --quick)."""
    import numpy as np

    from cache import POLICIES
    from common import dataset_dir, load_checkpoint
    from model import state_nbytes
    from sample import load_model
    model, _ = load_model(args.gpt, "cpu")
    block = model.config.block_size
    ckpt_dataset = load_checkpoint(os.path.join(args.gpt, "ckpt.pt"))["dataset"]
    data = np.memmap(os.path.join(dataset_dir(ckpt_dataset), "val.bin"), dtype=np.uint16, mode="r")
    if args.quick:
        n_seq = 16
        starts = np.linspace(0, len(data) - block - 2, n_seq).astype(np.int64)  # evenly spaced windows, no RNG
    else:
        n_seq = (len(data) - 1) // block
        starts = np.arange(n_seq) * block
    seqs = torch.stack([torch.from_numpy(data[s:s + block + 1].astype(np.int64)) for s in starts])
    x, y = seqs[:, :-1], seqs[:, 1:]

    def stepped_loss(model, label, **cache):
        state, total = model.init_state(n_seq, **cache), 0.0
        with torch.no_grad():
            for t in tqdm(range(block), desc=label, leave=False, disable=None):  # a bar on a terminal only
                logits, state = model.step(x[:, t], state)
                total += torch.nn.functional.cross_entropy(logits, y[:, t], reduction="sum").item()
        return total / (n_seq * block), state_nbytes(state) // n_seq

    Ks = [k for k in (8, 16, 32, 64, 128, 256) if k < block] + [block]
    results = {"gpt": {}, "rnn": {}}
    rows = []
    full_loss, full_bytes = stepped_loss(model, "GPT, full cache")
    for policy in [p for p in POLICIES if p != "full"]:
        results["gpt"][policy] = []
        for K in Ks:
            if policy == "sink" and K <= 4:
                continue
            loss, nbytes = (full_loss, full_bytes) if K >= block else stepped_loss(model, f"GPT, {policy} K={K}",
                                                                                  policy=policy, size=K)
            results["gpt"][policy].append({"K": K, "val_loss": loss, "state_bytes": nbytes})
            rows.append([f"GPT {policy}", K, f"{nbytes:,}", f"{loss:.4f}"])
    for path in args.rnn:
        rnn, _ = load_model(path, "cpu")
        loss, nbytes = stepped_loss(rnn, rnn.config.mixer)
        results["rnn"][rnn.config.mixer] = {"val_loss": loss, "state_bytes": nbytes, "out_dir": path}
        rows.append([rnn.config.mixer, "", f"{nbytes:,}", f"{loss:.4f}"])
    print(f"val loss over {n_seq} windows of {block} tokens ({n_seq * block:,} tokens), one token at a time; state "
          f"bytes per sequence")
    print_table(["model", "K", "state bytes", "val loss"], rows)
    save(args.name, {"gpt_out_dir": args.gpt, "n_seq": n_seq, "block_size": block, **results})
    plot(args.name, f"Val loss against state size ({block}-token windows): bounded KV caches and RNNs",
         "state bytes per sequence", "val loss",
         {f"GPT {p}": ([r["state_bytes"] for r in rs], [r["val_loss"] for r in rs])
          for p, rs in results["gpt"].items()},
         points={m: (r["state_bytes"], r["val_loss"]) for m, r in results["rnn"].items()})
