"""
The Shakespeare experiment: each mixer at equal parameter count, over several seeds; mean and std of the final
val loss, and learning curves.

    python -m experiments.shakespeare --seeds 3                 # the CPU recipe (config/shakespeare_char_cpu_*.py)
    python -m experiments.shakespeare --seeds 3 --budget baby   # nanoGPT's baby-GPT budget, for a GPU
    python -m experiments.shakespeare --seeds 1 -- --max_iters=200   # anything after -- goes to train.py

Writes experiments_out/shakespeare_<budget>.json, .md (the table) and .png (the curves).
"""
import argparse
import json
import os
import statistics

from experiments.runs import save_plot, train_run

MIXERS = {"gpt": "GPT (attention)", "mingru": "minGRU", "minlstm": "minLSTM"}
OUT = "experiments_out"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", choices=["cpu", "baby"], default="cpu")
    parser.add_argument("--mixers", nargs="+", choices=list(MIXERS), default=list(MIXERS))
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    config = "config/shakespeare_char_cpu_{}.py" if args.budget == "cpu" else "config/shakespeare_char_{}.py"
    results = {}
    for mixer in args.mixers:
        results[mixer] = []
        for seed in range(args.seeds):
            out_dir = os.path.join(OUT, f"shakespeare_{args.budget}", f"{mixer}-seed{seed}")
            print(f"{MIXERS[mixer]}, seed {seed}")
            evals = train_run([config.format(mixer), f"--seed={seed}", f"--out_dir={out_dir}", *args.extra],
                              os.path.join(out_dir, "train.log"))
            results[mixer].append(evals)
    rows = ["| mixer | final val loss (mean ± std) | per seed |", "| --- | --- | --- |"]
    summary = {}
    for mixer, runs in results.items():
        finals = [run[-1]["val"] for run in runs]
        std = statistics.stdev(finals) if len(finals) > 1 else 0.0
        summary[mixer] = {"mean": statistics.mean(finals), "std": std, "finals": finals}
        rows.append(f"| {MIXERS[mixer]} | {statistics.mean(finals):.4f} ± {std:.4f} | "
                    f"{', '.join(f'{v:.4f}' for v in finals)} |")
    table = "\n".join(rows)
    print(table)
    stem = os.path.join(OUT, f"shakespeare_{args.budget}")
    with open(f"{stem}.json", "w") as f:
        json.dump({"budget": args.budget, "seeds": args.seeds, "extra": args.extra, "summary": summary,
                   "curves": results}, f, indent=2)
    with open(f"{stem}.md", "w") as f:
        f.write(table + "\n")
    curves = {f"{MIXERS[m]} seed {s}": ([e["step"] for e in run], [e["val"] for e in run])
              for m, runs in results.items() for s, run in enumerate(runs)}
    save_plot(f"{stem}.png", f"Shakespeare ({args.budget} budget): val loss", "val loss", curves)


if __name__ == "__main__":
    main()
