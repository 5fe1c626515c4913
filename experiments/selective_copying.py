"""
Selective copying: answer accuracy against the number of layers, for minGRU, minLSTM and Mamba (the finding of
Table 1 of "Were RNNs All We Needed?": one layer is not enough, more layers solve it; Mamba's S6 is its reference).
Mamba runs as Mamba's layer (expand 2, its conv of 4, d_state 16, its init) inside the config's shape: MIXER_ARGS.

    python -m experiments.selective_copying                       # the CPU setup, config/selective_copying_cpu.py
    python -m experiments.selective_copying --config config/selective_copying_paper.py   # the paper's, for a GPU

Writes experiments_out/selective_copying.json, .md (the table) and .png (the curves); --report_only redoes the
last two from the JSON. Results already in the JSON for other mixers or depths (same config and overrides) are
kept, so `--mixers mamba` adds Mamba's row.
"""
import argparse
import json
import os

from common import write_json
from experiments.runs import keep_earlier_runs, run_side_by_side, save_plot, threads_per_job, train_run

OUT = "experiments_out"
# what a mixer changes in the config: Mamba's own expansion, conv and init, not the paper's minGRU/minLSTM layer
# shape and nanoGPT's init (with init=gpt2 two Mamba layers reached 24% here; with Mamba's, learning rate 3e-3 beat
# 1e-3 at two layers: docs/results.md)
MIXER_ARGS = {"mamba": ["--expansion=2", "--conv=4", "--init=mamba"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/selective_copying_cpu.py")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--mixers", nargs="+", default=["mingru", "minlstm", "mamba"])
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--report_only", action="store_true",
                        help="redo the table and plot from the JSON of an earlier run, without training")
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    stem = os.path.join(OUT, "selective_copying")
    if args.report_only:
        with open(f"{stem}.json") as f:
            report(stem, json.load(f))
        return
    jobs = [(mixer, n_layer) for mixer in args.mixers for n_layer in args.layers]

    def run(job):
        mixer, n_layer = job
        out_dir = os.path.join(OUT, "selective_copying", f"{mixer}-{n_layer}layer")
        evals, _ = train_run([args.config, f"--mixer={mixer}", *MIXER_ARGS.get(mixer, []), f"--n_layer={n_layer}",
                              f"--out_dir={out_dir}", *args.extra], os.path.join(out_dir, "train.log"),
                             threads=threads_per_job(args.jobs), label=f"[{mixer}, {layer_label(n_layer)}] ")
        return {"mixer": mixer, "n_layer": n_layer, "evals": evals, "final_acc": evals[-1]["acc"]}

    results = {f"{m}-{n}": r for (m, n), r in zip(jobs, run_side_by_side(run, jobs, args.jobs))}
    data = keep_earlier_runs(f"{stem}.json", {"config": args.config, "extra": args.extra, "results": results},
                             same=("config", "extra"), keys=("results",))
    write_json(f"{stem}.json", data)
    report(stem, data)


def report(stem, data):
    """The table (stdout and .md) and the accuracy curves (.png) of a finished experiment."""
    results = data["results"].values()
    mixers = list(dict.fromkeys(r["mixer"] for r in results))
    layers = sorted({r["n_layer"] for r in results})
    acc = {(r["mixer"], r["n_layer"]): r["final_acc"] for r in results}
    rows = ["| mixer | " + " | ".join(layer_label(n) for n in layers) + " |",
            "|" + " --- |" * (len(layers) + 1)]
    for mixer in mixers:
        rows.append(f"| {mixer} | " + " | ".join(f"{acc[mixer, n]:.2%}" if (mixer, n) in acc else "-"
                                                   for n in layers) + " |")
    table = "\n".join(rows)
    print(table)
    with open(f"{stem}.md", "w") as f:
        f.write(table + "\n")
    curves = {(r["mixer"], layer_label(r["n_layer"])):
              ([e["step"] for e in r["evals"]], [e["acc"] for e in r["evals"]]) for r in results}
    save_plot(f"{stem}.png", "Selective copying: answer accuracy (val)", "accuracy", curves, (0, 1.02))


def layer_label(n):
    return f"{n} layer{'s' if n > 1 else ''}"


if __name__ == "__main__":
    main()
