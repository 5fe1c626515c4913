"""
The Shakespeare experiment: each mixer at equal parameter count, over several seeds; mean and std of the loss
over the whole val split at the end of training, and over the whole test split (five unseen plays, where the dataset
has test.bin: python data/shakespeare_char/prepare.py --plays) beside it; each RNN's paired difference to the GPT at
the same seeds; the iteration at which each RNN reaches the GPT's final loss, and learning curves. Val is what
recipes were chosen by; test was never looked at by any choice.

    python -m experiments.shakespeare --seeds 3                 # the CPU recipe (config/shakespeare_char_cpu_*.py)
    python -m experiments.shakespeare --seeds 3 --budget baby   # nanoGPT's baby-GPT budget, for a GPU
    python -m experiments.shakespeare --seeds 3 --equal_time    # each mixer the iterations of the GPT's CPU time
    python -m experiments.shakespeare --seeds 1 -- --max_iters=200   # anything after -- goes to train.py

--equal_time gives each mixer max_iters (and lr_decay_iters) times the GPT's eager time per iteration over its own,
from bench_out/throughput.json (python bench.py throughput), and writes shakespeare_<budget>_equal_time.*.
With --mixers, the other mixers' results already in the JSON (same seeds and overrides) are kept. A run whose
train.log ends with its whole-split losses is not trained again, so an interrupted series resumes.
Writes experiments_out/shakespeare_<budget>.json, .md (the table) and .png (the curves); --report_only redoes
the last two from the JSON.
"""
import argparse
import json
import os
import statistics

from common import write_json
from experiments.runs import keep_earlier_runs, read_log, run_side_by_side, save_plot, threads_per_job, train_run

MIXERS = {"gpt": "GPT (attention)", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}
OUT = "experiments_out"
THROUGHPUT = os.path.join("bench_out", "throughput.json")


def equal_time_iters(max_iters, path=THROUGHPUT):
    """{mixer: iterations that take the GPT's time for max_iters}: max_iters x (the GPT's ms per iteration / the
    mixer's), from the eager rows of bench.py throughput (each config's optimizer, the kernels on)."""
    with open(path) as f:
        rows = [r for r in json.load(f)["rows"] if not r["compile"] and "C_KERNELS=0" not in r["scan"]]
    ms = {("gpt" if r["mixer"] == "attn" else r["mixer"]): r["ms_per_iter"] for r in rows}
    return {m: round(max_iters * ms["gpt"] / ms[m]) for m in MIXERS if m in ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", choices=["cpu", "baby"], default="cpu")
    parser.add_argument("--mixers", nargs="+", choices=list(MIXERS), default=list(MIXERS))
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--equal_time", action="store_true", help="each mixer the iterations that fit in the GPT's "
                        "training time (bench_out/throughput.json), not the same iterations")
    parser.add_argument("--report_only", action="store_true",
                        help="redo the table and plot from the JSON of an earlier run, without training")
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    name = f"shakespeare_{args.budget}{'_equal_time' if args.equal_time else ''}"
    stem = os.path.join(OUT, name)
    if args.report_only:
        with open(f"{stem}.json") as f:
            report(stem, json.load(f))
        return
    config = "config/shakespeare_char_cpu_{}.py" if args.budget == "cpu" else "config/shakespeare_char_{}.py"
    default_iters = 2000 if args.budget == "cpu" else 5000  # the configs'
    iters = equal_time_iters(default_iters) if args.equal_time else {}
    jobs = [(mixer, seed) for mixer in args.mixers for seed in range(args.seeds)]

    def run(job):
        mixer, seed = job
        budget = [f"--max_iters={iters[mixer]}", f"--lr_decay_iters={iters[mixer]}"] \
            if iters.get(mixer, default_iters) != default_iters else []
        # the GPT at equal time is the GPT at equal iterations: the same run, made once
        out_dir = os.path.join(OUT, name if budget else f"shakespeare_{args.budget}", f"{mixer}-seed{seed}")
        log = os.path.join(out_dir, "train.log")
        return read_log(log) or train_run([config.format(mixer), f"--seed={seed}", f"--out_dir={out_dir}", *budget,
                                           *args.extra], log, threads=threads_per_job(args.jobs),
                                          label=f"[{MIXERS[mixer]} seed {seed}] ")

    done = dict(zip(jobs, run_side_by_side(run, jobs, args.jobs)))
    summary = {}
    for mixer in args.mixers:
        summary[mixer] = spread([done[mixer, s][1]["val"] for s in range(args.seeds)])
        if all("test" in done[mixer, s][1] for s in range(args.seeds)):
            summary[mixer]["test"] = spread([done[mixer, s][1]["test"] for s in range(args.seeds)])
        if mixer in iters:
            summary[mixer]["max_iters"] = iters[mixer]
    data = {"budget": args.budget, "seeds": args.seeds, "extra": args.extra, "summary": summary,
            "curves": {m: [done[m, s][0] for s in range(args.seeds)] for m in args.mixers}}
    data = keep_earlier_runs(f"{stem}.json", data, same=("budget", "seeds", "extra"), keys=("summary", "curves"))
    for key in ("summary", "curves"):  # the table's order
        data[key] = {m: data[key][m] for m in MIXERS if m in data[key]}
    data["paired"] = paired(data["summary"])
    write_json(f"{stem}.json", data)
    report(stem, data)


def spread(finals):
    """{mean, std, finals} of one loss per seed."""
    return {"mean": statistics.mean(finals), "std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
            "finals": finals}


def paired(summary):
    """{mixer: {split: spread of (mixer's loss - the GPT's) seed by seed}}: a negative mean is a lead over the GPT,
    and its std, not the two models' own spreads, says whether it holds from seed to seed."""
    if "gpt" not in summary:
        return {}
    gpt = {"val": summary["gpt"], "test": summary["gpt"].get("test")}
    return {mixer: {split: spread([a - b for a, b in zip(here["finals"], gpt[split]["finals"])])
                    for split, here in (("val", s), ("test", s.get("test"))) if here and gpt[split]}
            for mixer, s in summary.items() if mixer != "gpt"}


def report(stem, data):
    """The table (stdout and .md) and the learning curves (.png) of a finished experiment."""
    reach, best = reach_gpt(data["curves"]), best_step(data["curves"])
    pairs = data.get("paired", {})

    def pm(s):
        return f"{s['mean']:.4f} ± {s['std']:.4f}" if s else ""

    def diff(s):
        return f"{s['mean']:+.4f} ± {s['std']:.4f}" if s else ""

    timed = any("max_iters" in s for s in data["summary"].values())
    rows = ["| mixer | " + ("iterations | " if timed else "") + "whole val split (mean ± std) | whole test split, "
            "unseen plays | val - GPT's, paired by seed | test - GPT's, paired by seed | val per seed | test per "
            "seed | reaches the GPT's final loss at | best val loss at |",
            "| --- | " + ("--- | " if timed else "") + "--- | --- | --- | --- | --- | --- | --- | --- |"]
    for mixer, s in data["summary"].items():
        at = "" if mixer == "gpt" or "gpt" not in reach else f"iteration {reach[mixer]}" if reach[mixer] else "never"
        p = pairs.get(mixer, {})
        test = s.get("test")
        rows.append(f"| {MIXERS[mixer]} | " + (f"{s.get('max_iters', '')} | " if timed else "") +
                    f"{pm(s)} | {pm(test)} | {diff(p.get('val'))} | {diff(p.get('test'))} | "
                    f"{', '.join(f'{v:.4f}' for v in s['finals'])} | "
                    f"{', '.join(f'{v:.4f}' for v in test['finals']) if test else ''} | {at} | "
                    f"iteration {best[mixer]} |")
    table = "\n".join(rows)
    print(table)
    with open(f"{stem}.md", "w") as f:
        f.write(table + "\n")
    curves = {(MIXERS[m], f"seed {s}"): ([e["step"] for e in run], [e["val"] for e in run])
              for m, runs in data["curves"].items() for s, run in enumerate(runs)}
    # the first eval (the untrained model, loss ~ln(vocab)) would squash the part of the curves that differs
    later = [e["val"] for runs in data["curves"].values() for run in runs for e in run[1:]]
    ylim = (min(later) - 0.05, max(later) + 0.05) if later else None
    when = ", equal CPU time" if timed else ""
    save_plot(f"{stem}.png", f"Shakespeare ({data['budget']} budget{when}): val loss", "val loss (20-batch estimate)",
              curves, ylim)


def mean_curves(curves):
    """{mixer: [(step, val averaged over the seeds)]} from the progress lines' eval_iters-batch estimates."""
    return {m: [(at_step[0]["step"], statistics.mean(e["val"] for e in at_step)) for at_step in zip(*runs)]
            for m, runs in curves.items()}


def best_step(curves):
    """{mixer: the eval iteration with the lowest seed-mean val loss} (the paper reports where each model's best
    val loss falls: Mamba ~400, minGRU/minLSTM ~575-625, the Transformer ~2,500 on its budget)."""
    return {m: min(curve, key=lambda sv: sv[1])[0] for m, curve in mean_curves(curves).items()}


def reach_gpt(curves):
    """{mixer: the first eval iteration at which its seed-mean val curve is at or below the GPT's seed-mean final
    val loss, or None}. The curves are the progress lines' eval_iters-batch estimates, on both sides."""
    if "gpt" not in curves:
        return {}
    mean_curve = mean_curves(curves)
    target = mean_curve["gpt"][-1][1]
    return {m: next((step for step, v in curve if v <= target), None) for m, curve in mean_curve.items()}


if __name__ == "__main__":
    main()
