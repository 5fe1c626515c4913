"""
Selective copying: answer accuracy against the number of layers, for minGRU and minLSTM (the finding of Table 1
of "Were RNNs All We Needed?": one layer is not enough, more layers solve it).

    python -m experiments.selective_copying                       # the CPU setup, config/selective_copying_cpu.py
    python -m experiments.selective_copying --config config/selective_copying_paper.py   # the paper's, for a GPU

Writes experiments_out/selective_copying.json, .md and .png.
"""
import argparse
import json
import os

from experiments.runs import save_plot, train_run

OUT = "experiments_out"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/selective_copying_cpu.py")
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--mixers", nargs="+", default=["mingru", "minlstm"])
    parser.add_argument("extra", nargs="*", help="overrides passed to train.py, after --")
    args = parser.parse_args()
    results = {}
    for mixer in args.mixers:
        for n_layer in args.layers:
            out_dir = os.path.join(OUT, "selective_copying", f"{mixer}-{n_layer}layer")
            print(f"{mixer}, {n_layer} layer(s)")
            evals = train_run([args.config, f"--mixer={mixer}", f"--n_layer={n_layer}", f"--out_dir={out_dir}",
                               *args.extra], os.path.join(out_dir, "train.log"))
            results[f"{mixer}-{n_layer}"] = {"mixer": mixer, "n_layer": n_layer, "evals": evals,
                                             "final_acc": evals[-1]["acc"]}
    header = "| mixer | " + " | ".join(f"{n} layer{'s' if n > 1 else ''}" for n in args.layers) + " |"
    rows = [header, "|" + " --- |" * (len(args.layers) + 1)]
    for mixer in args.mixers:
        accs = [results[f"{mixer}-{n}"]["final_acc"] for n in args.layers]
        rows.append(f"| {mixer} | " + " | ".join(f"{a:.1%}" for a in accs) + " |")
    table = "\n".join(rows)
    print(table)
    stem = os.path.join(OUT, "selective_copying")
    with open(f"{stem}.json", "w") as f:
        json.dump({"config": args.config, "extra": args.extra, "results": results}, f, indent=2)
    with open(f"{stem}.md", "w") as f:
        f.write(table + "\n")
    save_plot(f"{stem}.png", "Selective copying: answer accuracy (val)", "accuracy",
              {k: ([e["step"] for e in r["evals"]], [e["acc"] for e in r["evals"]]) for k, r in results.items()})


if __name__ == "__main__":
    main()
