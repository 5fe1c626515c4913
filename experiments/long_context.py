"""
Long context: each mixer's CPU recipe trained at block_size 512 (batch 4, 2000 iterations: 2,048 tokens per
iteration), then measured where memory matters:

- `bench.py state_loss` at that length: the GPT under each KV-cache policy at K = 16 ... 256 and the full cache,
  token by token over the whole val split, beside each RNN at its (fixed) state size;
- `bench.py length`: loss by position over 4,096-token stretches, for the RNNs trained at 64 (the Shakespeare
  experiment's seed-0 models) and at 512, with the GPTs' sliding-window re-runs as their baselines.

    python -m experiments.long_context --jobs 2            # train what is missing, then measure
    python -m experiments.long_context --mixers gpt mingru  # only these (training; the measurements use all present)

Trained models go to experiments_out/long_context/<mixer>/ (a model whose train.log ends with its whole-split loss is
not trained again); the measurements write bench_out/state_loss_512.* and bench_out/length.*.
"""
import argparse
import json
import os
from types import SimpleNamespace

from experiments.runs import run_side_by_side, threads_per_job, train_run

MIXERS = ("gpt", "mingru", "minlstm", "mamba")
LONG = ["--block_size=512", "--batch_size=4", "--eval_interval=500", "--eval_iters=10"]
OUT = "experiments_out"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixers", nargs="+", choices=MIXERS, default=list(MIXERS))
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--train_only", action="store_true", help="train what is missing, measure nothing")
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    root = os.path.join(OUT, "long_context")

    def out_dir(mixer):
        return os.path.join(root, mixer)

    def trained(mixer):
        log = os.path.join(out_dir(mixer), "train.log")
        if not os.path.exists(log):
            return False
        with open(log) as f:
            return "whole val split:" in f.read()

    def run(mixer):
        return train_run([f"config/shakespeare_char_cpu_{mixer}.py", *LONG, f"--out_dir={out_dir(mixer)}",
                          *args.extra], os.path.join(out_dir(mixer), "train.log"),
                         threads=threads_per_job(args.jobs), label=f"[{mixer} at 512] ")

    todo = [m for m in args.mixers if not trained(m)]
    done = dict(zip(todo, run_side_by_side(run, todo, args.jobs)))
    path = os.path.join(OUT, "long_context.json")
    data = {"overrides": LONG + args.extra, "runs": {}}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    for mixer, (evals, whole) in done.items():
        data["runs"][mixer] = {"whole_split_val_loss": whole, "evals": evals}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    if args.train_only:
        return
    from benchmarks.length import bench_length
    from benchmarks.state_loss import bench_state_loss
    have = [m for m in MIXERS if trained(m)]
    if "gpt" not in have:
        raise SystemExit("the measurements need the GPT trained at 512; run without --mixers first")
    bench_state_loss(SimpleNamespace(gpt=out_dir("gpt"), rnn=[out_dir(m) for m in have if m != "gpt"],
                                     quick=False, name="state_loss_512"))
    short = os.path.join(OUT, "shakespeare_cpu")
    rnn_64 = [os.path.join(short, f"{m}-seed0") for m in ("mingru", "minlstm", "mamba")
              if os.path.exists(os.path.join(short, f"{m}-seed0", "ckpt.pt"))]
    bench_length(SimpleNamespace(rnn=rnn_64 + [out_dir(m) for m in have if m != "gpt"],
                                 gpt=[os.path.join(short, "gpt-seed0"), out_dir("gpt")], tokens=4096, stride=None,
                                 chunk=512))


if __name__ == "__main__":
    main()
