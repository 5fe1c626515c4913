"""bench.py time_to_loss: whole-split val loss against training wall time, each mixer at its CPU recipe."""
import os
import subprocess
import sys
import tempfile

from benchmarks.common import plot, print_table, save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIXERS = {"gpt": "GPT", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}


def train_curve(mixer, every, extra):
    """[(iteration, training seconds, whole-split val loss)] of one train.py run of config/shakespeare_char_cpu_*.py,
    read from its 'whole val split loss X after S s of training' lines (evaluations and saves are not counted)."""
    with tempfile.TemporaryDirectory() as out_dir:
        cmd = [sys.executable, "train.py", f"config/shakespeare_char_cpu_{mixer}.py", "--eval_whole_split=True",
               f"--eval_interval={every}", f"--out_dir={out_dir}", *extra]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "CI": "true"})
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    curve = []
    for line in res.stdout.splitlines():
        if ": whole val split loss " in line:  # step N: whole val split loss X after S s of training
            head, tail = line.split(": whole val split loss ")
            loss, seconds = tail.split(" after ")
            curve.append((int(head.split()[-1]), float(seconds.split()[0]), float(loss)))
    return curve


def bench_time_to_loss(args):
    # every 50 iterations: the RNNs cross the GPT's final loss between two evaluations, which this pins to 50 of 2000
    every, extra = (50, ["--max_iters=200", "--lr_decay_iters=200"]) if args.quick else (50, [])
    rounds = max(1, getattr(args, "rounds", 1))
    print("training each mixer's CPU recipe (config/shakespeare_char_cpu_*.py) in turn, in one process each, "
          f"with the whole val split evaluated every {every} iterations; seconds count training only"
          + (f"; {rounds} rounds, the order reversed each round, seconds averaged" if rounds > 1 else ""))
    runs = {mixer: [] for mixer in MIXERS}  # each mixer's curve from every round
    for r in range(rounds):
        for mixer in (list(MIXERS) if r % 2 == 0 else list(MIXERS)[::-1]):
            runs[mixer].append(train_curve(mixer, every, extra))
            it, seconds, loss = runs[mixer][-1][-1]
            print(f"round {r + 1}: {MIXERS[mixer]}: {loss:.4f} after {it} iterations, {seconds:.1f} s of training")
    curves = {}
    for mixer, curve_runs in runs.items():
        if any([(i, v) for i, _, v in c] != [(i, v) for i, _, v in curve_runs[0]] for c in curve_runs):
            print(f"note: {MIXERS[mixer]}'s losses differ between rounds (a nondeterministic kernel?)")
        curves[mixer] = [(i, sum(c[k][1] for c in curve_runs) / rounds, v) for k, (i, _, v) in enumerate(curve_runs[0])]
    target, gpt_seconds = curves["gpt"][-1][2], curves["gpt"][-1][1]
    rows, results = [], {}
    for mixer, curve in curves.items():
        reach = next(((it, s) for it, s, loss in curve if loss <= target), (None, None))
        results[mixer] = {"curve": [{"iter": it, "seconds": s, "val_loss": v} for it, s, v in curve],
                          "reach_gpt_final": {"iter": reach[0], "seconds": reach[1],
                                              "fraction_of_gpt_time": None if reach[1] is None else
                                              reach[1] / gpt_seconds}}
        rows.append([MIXERS[mixer], f"{curve[-1][2]:.4f}", f"{curve[-1][1]:.1f}",
                     "never" if reach[0] is None else f"iteration {reach[0]}, {reach[1]:.1f} s",
                     "" if reach[1] is None else f"{reach[1] / gpt_seconds:.1%}"])
    print_table(["mixer", "final whole-split val loss", "training s", "reaches the GPT's final loss at",
                 "of the GPT's time"], rows)
    save("time_to_loss", {"device": "cpu", "every": every, "extra": extra, "rounds": rounds, "gpt_final": target,
                          "results": results,
                          "round_seconds": {m: [c[-1][1] for c in curve_runs] for m, curve_runs in runs.items()}})
    plot("time_to_loss", "Whole-split val loss against training time (CPU recipe)", "seconds of training",
         "whole-split val loss", {MIXERS[m]: ([p[1] for p in c[1:]], [p[2] for p in c[1:]]) for m, c in curves.items()},
         logx=False)
