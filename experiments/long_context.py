"""
Long context: each mixer's CPU recipe trained at block_size 512 (batch 4, 2000 iterations: 2,048 tokens per
iteration; the GPT with a sequence length warmup, MIXER_ARGS), then measured where memory matters:

- `bench.py state_loss` at that length: the GPT under each KV-cache policy at K = 8, 16, ... (below the window)
  and the full cache, token by token over the whole val split, beside each RNN at its (fixed) state size; for a
  GPT with RoPE also at 1,024 and 2,048 tokens (`--tokens`), past its block_size, where a bounded cache is what
  keeps its memory fixed;
- `bench.py length`: loss by position over 4,096-token stretches, for the models trained at 64 (the Shakespeare
  experiment's seed-0 models) and at 512: the RNNs and a RoPE GPT in one pass, every GPT also re-run on a sliding
  window of its block_size, the baseline.

    python -m experiments.long_context --jobs 2            # train what is missing, then measure
    python -m experiments.long_context --mixers gpt mingru  # only these (training; the measurements use all present)
    python -m experiments.long_context --seeds 3 --jobs 2   # also seeds 1 and 2 of each, for the loss's spread
    python -m experiments.long_context --report_only        # the table again, from the JSON

Trained models go to experiments_out/long_context/<mixer>/ (the config's seed; the one measured) and
<mixer>-seed<N>/ (a model whose train.log ends with its whole-split loss is not trained again); the measurements
write bench_out/state_loss_{512,1024,2048}.* and bench_out/length.*. The losses go to experiments_out/long_context.json
and the table to long_context.md.
"""
import argparse
import json
import os
import re
import statistics
from types import SimpleNamespace

from common import write_json
from experiments.runs import read_log, run_side_by_side, threads_per_job, train_run
from experiments.search import NAMES, fmt, fmt_diff

MIXERS = ("gpt", "mingru", "minlstm", "mamba")
LONG = ["--block_size=512", "--batch_size=4", "--eval_interval=500", "--eval_iters=10"]
# with 4 windows of 512 tokens per step the GPT sits at the bigram plateau (~2.45) for most of the run, at lr 1e-3
# or 3e-3; it learns from many short windows (experiments_out/long_context_screen.json), so it starts on 32
# windows of 64 tokens, grown to 4 of 512 over the first half of the run
MIXER_ARGS = {"gpt": ["--seq_warmup_iters=1000"]}
OUT = "experiments_out"


def run_args(mixer, seed=None, extra=()):
    """train.py's arguments for a mixer's run at 512 tokens (seed None: the config's)."""
    return [f"config/shakespeare_char_cpu_{mixer}.py", *LONG, *MIXER_ARGS.get(mixer, []),
            *([] if seed is None else [f"--seed={seed}"]), *extra]


def per_seed(entry, split):
    """A mixer's whole-split losses on split, the config's seed first, then seeds 1, 2, ... (None if any lacks it)."""
    first = entry.get(f"whole_split_{split}_loss")
    others = entry.get("other_seeds" if split == "val" else "other_seeds_test", {})
    return None if first is None else [first, *(others[s] for s in sorted(others, key=int))]


def report(data):
    """The table (stdout and experiments_out/long_context.md): each mixer's val and test over its seeds, and each RNN's
    difference to the GPT paired by seed (positive: the GPT is lower). Its std, not the two models' own spreads,
    says whether a difference holds from seed to seed."""
    rows = ["| mixer at 512 tokens | whole val split (mean ± std) | whole test split, unseen plays | val - GPT's, "
            "paired by seed | test - GPT's, paired by seed | val per seed | test per seed |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for m, entry in data.items():
        cells = []
        for split in ("val", "test"):
            here, gpt = per_seed(entry, split), per_seed(data.get("gpt", {}), split)
            cells.append(fmt(here) if here else "")
            diffs = [a - b for a, b in zip(here, gpt)] if here and gpt and m != "gpt" else None
            cells.append(fmt_diff(diffs) if diffs else "")
        seeds = [", ".join(f"{v:.4f}" for v in per_seed(entry, split) or []) for split in ("val", "test")]
        rows.append(f"| {NAMES[m]} | {cells[0]} | {cells[2]} | {cells[1]} | {cells[3]} | {seeds[0]} | {seeds[1]} |")
    table = "\n".join(rows)
    print(table)
    with open(os.path.join(OUT, "long_context.md"), "w") as f:
        f.write(table + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixers", nargs="+", choices=MIXERS, default=list(MIXERS))
    parser.add_argument("--seeds", type=int, default=1, help="runs per mixer: the config's seed (the measured "
                        "model), then seeds 1, 2, ... for the spread of the loss")
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--train_only", action="store_true", help="train what is missing, measure nothing")
    parser.add_argument("--report_only", action="store_true", help="the table again, from long_context.json")
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    root = os.path.join(OUT, "long_context")
    if args.report_only:
        with open(os.path.join(OUT, "long_context.json")) as f:
            return report(json.load(f))

    def out_dir(mixer, seed=None):
        return os.path.join(root, mixer if seed is None else f"{mixer}-seed{seed}")

    def train_args(mixer, seed=None):
        return run_args(mixer, seed, args.extra)

    def log(mixer, seed=None):
        """(evals, {split: whole-split loss}) of the mixer's finished run, or None."""
        return read_log(os.path.join(out_dir(mixer, seed), "train.log"))

    def run(job):
        mixer, seed = job
        return train_run([*train_args(mixer, seed), f"--out_dir={out_dir(mixer, seed)}"],
                         os.path.join(out_dir(mixer, seed), "train.log"), threads=threads_per_job(args.jobs),
                         label=f"[{mixer} at 512{'' if seed is None else f', seed {seed}'}] ")

    seeds = [None, *range(1, args.seeds)]  # None: the config's own seed
    run_side_by_side(run, [(m, s) for s in seeds for m in args.mixers if log(m, s) is None], args.jobs)
    finished = {m: log(m) for m in MIXERS}
    have = [m for m in MIXERS if finished[m] is not None]
    data = {m: {"train_args": train_args(m), "whole_split_val_loss": finished[m][1]["val"],
                **({"whole_split_test_loss": finished[m][1]["test"]} if "test" in finished[m][1] else {}),
                "evals": finished[m][0]} for m in have}
    for m in have:  # other seeds, whichever call trained them
        found = sorted(int(d.rsplit("-seed", 1)[1]) for d in (os.listdir(root) if os.path.isdir(root) else [])
                       if re.fullmatch(rf"{m}-seed\d+", d))
        other = {s: run[1] for s in found if (run := log(m, s)) is not None}
        if other:
            losses = [finished[m][1]["val"], *(w["val"] for w in other.values())]
            data[m].update(other_seeds={str(s): w["val"] for s, w in other.items()}, mean=statistics.mean(losses),
                           std=statistics.stdev(losses))
            if all("test" in w for w in [finished[m][1], *other.values()]):
                tests = [finished[m][1]["test"], *(w["test"] for w in other.values())]
                data[m].update(other_seeds_test={str(s): w["test"] for s, w in other.items()},
                               test_mean=statistics.mean(tests), test_std=statistics.stdev(tests))
    write_json(os.path.join(OUT, "long_context.json"), data)
    report(data)
    if args.train_only:
        return
    from benchmarks.length import bench_length
    from benchmarks.state_loss import bench_state_loss
    if "gpt" not in have:
        raise SystemExit("the measurements need the GPT trained at 512; run without --mixers first")
    from sample import load_model
    rnns = [out_dir(m) for m in have if m != "gpt"]
    # past 512 only a GPT without a position table can go on (pos="rope"): there its caches are bounded or it holds
    # every token, at twice and four times the length it was trained on, beside the RNNs at the same length
    past = () if load_model(out_dir("gpt"), "cpu")[0].learned_positions else (1024, 2048)
    for tokens in (512, *past):
        bench_state_loss(SimpleNamespace(gpt=out_dir("gpt"), rnn=rnns, quick=False, name=f"state_loss_{tokens}",
                                         tokens=tokens))
    at_64 = {m: os.path.join(OUT, "shakespeare_cpu", f"{m}-seed0") for m in MIXERS}  # those trained
    at_64 = {m: p for m, p in at_64.items() if os.path.exists(os.path.join(p, "ckpt.pt"))}
    bench_length(SimpleNamespace(rnn=[p for m, p in at_64.items() if m != "gpt"] + rnns,
                                 gpt=[p for m, p in at_64.items() if m == "gpt"] + [out_dir("gpt")],
                                 tokens=4096, stride=None, chunk=512))


if __name__ == "__main__":
    main()
