"""
The Shakespeare experiment: each mixer at equal parameter count, over several seeds; mean and std of the loss
over the whole val split at the end of training, the iteration at which each RNN reaches the GPT's final loss, and
learning curves.

    python -m experiments.shakespeare --seeds 3                 # the CPU recipe (config/shakespeare_char_cpu_*.py)
    python -m experiments.shakespeare --seeds 3 --budget baby   # nanoGPT's baby-GPT budget, for a GPU
    python -m experiments.shakespeare --seeds 1 -- --max_iters=200   # anything after -- goes to train.py

With --mixers, the other mixers' results already in the JSON (same seeds and overrides) are kept.
Writes experiments_out/shakespeare_<budget>.json, .md (the table) and .png (the curves); --report_only redoes
the last two from the JSON.
"""
import argparse
import json
import os
import statistics

from experiments.runs import keep_earlier_runs, run_side_by_side, save_plot, threads_per_job, train_run

MIXERS = {"gpt": "GPT (attention)", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}
OUT = "experiments_out"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", choices=["cpu", "baby"], default="cpu")
    parser.add_argument("--mixers", nargs="+", choices=list(MIXERS), default=list(MIXERS))
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--report_only", action="store_true",
                        help="redo the table and plot from the JSON of an earlier run, without training")
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    stem = os.path.join(OUT, f"shakespeare_{args.budget}")
    if args.report_only:
        with open(f"{stem}.json") as f:
            report(stem, json.load(f))
        return
    config = "config/shakespeare_char_cpu_{}.py" if args.budget == "cpu" else "config/shakespeare_char_{}.py"
    jobs = [(mixer, seed) for mixer in args.mixers for seed in range(args.seeds)]

    def run(job):
        mixer, seed = job
        out_dir = os.path.join(OUT, f"shakespeare_{args.budget}", f"{mixer}-seed{seed}")
        return train_run([config.format(mixer), f"--seed={seed}", f"--out_dir={out_dir}", *args.extra],
                         os.path.join(out_dir, "train.log"), threads=threads_per_job(args.jobs),
                         label=f"[{MIXERS[mixer]} seed {seed}] ")

    done = dict(zip(jobs, run_side_by_side(run, jobs, args.jobs)))
    results = {m: [done[m, s][0] for s in range(args.seeds)] for m in args.mixers}
    whole = {m: [done[m, s][1] for s in range(args.seeds)] for m in args.mixers}
    summary = {}
    for mixer, finals in whole.items():
        std = statistics.stdev(finals) if len(finals) > 1 else 0.0
        summary[mixer] = {"mean": statistics.mean(finals), "std": std, "finals": finals}
    data = {"budget": args.budget, "seeds": args.seeds, "extra": args.extra, "summary": summary, "curves": results}
    data = keep_earlier_runs(f"{stem}.json", data, same=("budget", "seeds", "extra"), keys=("summary", "curves"))
    for key in ("summary", "curves"):  # the table's order
        data[key] = {m: data[key][m] for m in MIXERS if m in data[key]}
    with open(f"{stem}.json", "w") as f:
        json.dump(data, f, indent=2)
    report(stem, data)


def report(stem, data):
    """The table (stdout and .md) and the learning curves (.png) of a finished experiment."""
    reach, best = reach_gpt(data["curves"]), best_step(data["curves"])
    rows = ["| mixer | whole-split val loss (mean ± std) | per seed | reaches the GPT's final loss at | "
            "best val loss at |", "| --- | --- | --- | --- | --- |"]
    for mixer, s in data["summary"].items():
        at = "" if mixer == "gpt" or "gpt" not in reach else f"iteration {reach[mixer]}" if reach[mixer] else "never"
        rows.append(f"| {MIXERS[mixer]} | {s['mean']:.4f} ± {s['std']:.4f} | "
                    f"{', '.join(f'{v:.4f}' for v in s['finals'])} | {at} | iteration {best[mixer]} |")
    table = "\n".join(rows)
    print(table)
    with open(f"{stem}.md", "w") as f:
        f.write(table + "\n")
    curves = {(MIXERS[m], f"seed {s}"): ([e["step"] for e in run], [e["val"] for e in run])
              for m, runs in data["curves"].items() for s, run in enumerate(runs)}
    # the first eval (the untrained model, loss ~ln(vocab)) would squash the part of the curves that differs
    later = [e["val"] for runs in data["curves"].values() for run in runs for e in run[1:]]
    ylim = (min(later) - 0.05, max(later) + 0.05) if later else None
    save_plot(f"{stem}.png", f"Shakespeare ({data['budget']} budget): val loss", "val loss", curves, ylim)


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
