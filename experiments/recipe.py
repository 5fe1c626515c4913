"""
The model recipe, ablated on the CPU recipe (block 64, batch 12, 4 layers, 128 dims, 2000 iterations): from a base
recipe per mixer, one factor changed at a time (weight init, norm, bias, RNN expansion against MLP width at equal
parameter count, a causal conv, learning rate), plus the combination of the winners; every cell over seeds, scored
by the loss over the whole val split at the end of training.

    python -m experiments.recipe                          # every cell, 3 seeds, 2 runs side by side
    python -m experiments.recipe --mixers mingru --seeds 1 --cells base conv4
    python -m experiments.recipe --report_only            # the table and plot again, from the JSON

Every finished run is written to experiments_out/recipe.json at once (merged with what is on disk, under a file
lock, so two drivers can add cells side by side), and a run already there is not run again, so an interrupted
ablation continues where it stopped and more seeds can be added later. Seeds go in the outer loop:
with --seeds 3, every cell gets seed 0 before any cell gets seed 1. Writes recipe.json, .md and .png.
"""
import argparse
import json
import os
import statistics
import threading

from experiments.runs import (
    ROOT,
    describe,
    dot_plot,
    record_run,
    run_key,
    run_side_by_side,
    threads_per_job,
    train_run,
    whole_record,
)

OUT = "experiments_out"
NAMES = {"gpt": "GPT (attention)", "mingru": "minGRU", "minlstm": "minLSTM"}
CONFIG = "config/shakespeare_char_cpu_{}.py"

# The base of each ablation, every ablated key spelled out (so a cell means the same run whatever the config file
# says today). The GPT's base is nanoGPT's own recipe. The RNNs' base is nanoGPT's with PyTorch's default init and
# twice the learning rate: a first probe found init to matter most for the RNNs, and the GPT's first cells found
# 2e-3 far better than 1e-3 on this budget, so the RNNs' learning rate is bracketed around 2e-3.
# (base, a wider RNN with a narrower MLP, a narrower RNN with a wider MLP), at equal parameters: a minGRU block has
# 3*alpha*C^2 + 2*mlp_ratio*C^2 weights, a minLSTM block 4*alpha*C^2 + 2*mlp_ratio*C^2
SHAPES = {"mingru": ({"expansion": 4 / 3, "mlp_ratio": 4.0}, {"expansion": 2.0, "mlp_ratio": 3.0},
                     {"expansion": 1.0, "mlp_ratio": 4.5}),
          "minlstm": ({"expansion": 1.0, "mlp_ratio": 4.0}, {"expansion": 2.0, "mlp_ratio": 2.0},
                      {"expansion": 0.75, "mlp_ratio": 4.5}),
          "gpt": ({"expansion": 1.0, "mlp_ratio": 4.0},)}
COMMON = {"norm": "layernorm", "bias": True, "conv": 0}
BASES = {"gpt": {"init": "gpt2", **COMMON, "learning_rate": 1e-3, **SHAPES["gpt"][0]},
         "mingru": {"init": "torch", **COMMON, "learning_rate": 2e-3, **SHAPES["mingru"][0]},
         "minlstm": {"init": "torch", **COMMON, "learning_rate": 2e-3, **SHAPES["minlstm"][0]}}
# what both RNN configs adopted from the cells below
ADOPTED = {"conv": 4, "learning_rate": 3e-3, "weight_decay": 0.0}
# each cell: (factor, what changes from the base, or a function of the mixer that gives it)
RNN_CELLS = {
    "base": ("base", {}),
    "init_gpt2": ("init", {"init": "gpt2"}),
    "init_mamba": ("init", {"init": "mamba"}),
    "rmsnorm": ("norm", {"norm": "rmsnorm"}),
    "no_bias": ("bias", {"bias": False}),
    "wide_rnn": ("shape", lambda mixer: SHAPES[mixer][1]),
    "conv4": ("conv", {"conv": 4}),
    "lr_1e-3": ("learning rate", {"learning_rate": 1e-3}),
    "lr_3e-3": ("learning rate", {"learning_rate": 3e-3}),
    "lr_5e-3": ("learning rate", {"learning_rate": 5e-3}),
    "conv4_rms_nobias": ("combined", {"conv": 4, "norm": "rmsnorm", "bias": False}),
    # the optimiser, which the base takes from the config file (AdamW, weight decay 0.1, beta2 0.99, cosine to 1e-4)
    "wd_0": ("optimiser", {"weight_decay": 0.0}),
    "beta2_0.95": ("optimiser", {"beta2": 0.95}),
    "min_lr_1e-5": ("optimiser", {"min_lr": 1e-5}),
    "warmup_0": ("optimiser", {"warmup_iters": 0}),
    "conv4_lr_3e-3": ("combined", {"conv": 4, "learning_rate": 3e-3}),
    "conv4_lr_3e-3_wd_0": ("combined", ADOPTED),
    # one more change on top of that last cell (each mixer's adopted recipe, ADOPTED)
    "adopted_no_bias": ("adopted +", {**ADOPTED, "bias": False}),
    "adopted_lr_4e-3": ("adopted +", {**ADOPTED, "learning_rate": 4e-3}),
    "adopted_lr_5e-3": ("adopted +", {**ADOPTED, "learning_rate": 5e-3}),
    "adopted_narrow_rnn": ("adopted +", lambda mixer: {**ADOPTED, **SHAPES[mixer][2]}),
    "adopted_narrow_rnn_lr_4e-3": ("adopted +", lambda mixer: {**ADOPTED, "learning_rate": 4e-3, **SHAPES[mixer][2]}),
    # at the end of the adopted recipe the train loss is ~0.2 below the val loss
    "adopted_dropout_0.1": ("adopted +", {**ADOPTED, "dropout": 0.1}),
    # sequence length warmup (train.py): 48 windows of 16 tokens at first, grown to 12 of 64 by iteration 500
    "adopted_seq_warmup": ("adopted +", {**ADOPTED, "seq_warmup_iters": 500, "seq_warmup_start": 16}),
    # depth at equal parameters: 6 layers of width 104 (0.797M) instead of 4 of 128 (0.805M)
    "adopted_deep": ("adopted +", {**ADOPTED, "n_layer": 6, "n_embd": 104}),
    # an output matrix of its own (+8,320 parameters, 1%), the embedding then nn.Embedding's N(0, 1), as
    # lucidrains' minLM
    "adopted_untied": ("adopted +", {**ADOPTED, "tie_embeddings": False}),
}
GPT_CELLS = {
    "base": ("base", {}),
    "rmsnorm": ("norm", {"norm": "rmsnorm"}),
    "no_bias": ("bias", {"bias": False}),
    "lr_2e-3": ("learning rate", {"learning_rate": 2e-3}),
    "lr_3e-3": ("learning rate", {"learning_rate": 3e-3}),
    "lr_5e-3": ("learning rate", {"learning_rate": 5e-3}),
    # the RNNs' untied cell, on the GPT's adopted recipe (its lm_head then N(0, 0.02) as every Linear under gpt2 init)
    "lr_3e-3_untied": ("embeddings", {"learning_rate": 3e-3, "tie_embeddings": False}),
}

# the optimiser and embedding keys a cell leaves out came from the config file: these values, when every such cell ran
IMPLIED = {"weight_decay": 0.1, "beta2": 0.99, "min_lr": 1e-4, "warmup_iters": 100, "tie_embeddings": True}


def cells(mixer):
    """{cell name: (factor, the full setting of every ablated key)} for one mixer."""
    out = {}
    for name, (factor, change) in (GPT_CELLS if mixer == "gpt" else RNN_CELLS).items():
        out[name] = (factor, {**BASES[mixer], **(change(mixer) if callable(change) else change)})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--mixers", nargs="+", choices=list(NAMES), default=list(NAMES))
    parser.add_argument("--cells", nargs="+", help="only these cells (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--report_only", action="store_true", help="redo the table and plot from the JSON")
    parser.add_argument("extra", nargs="*", help="overrides passed to every train.py run, after --")
    args = parser.parse_args()
    stem = os.path.join(OUT, "recipe")
    data = {"runs": {}}
    if os.path.exists(f"{stem}.json"):
        with open(f"{stem}.json") as f:
            data = json.load(f)
    if args.report_only:
        report(stem, data)
        return
    if data.get("extra", args.extra) != args.extra:
        raise SystemExit(f"{stem}.json holds runs made with the overrides {data['extra']}, not {args.extra}; "
                         f"move it away to start a new ablation")
    data["extra"] = args.extra
    todo = []
    for seed in range(args.seeds):
        for mixer in args.mixers:
            for name, (_, setting) in cells(mixer).items():
                key = run_key(setting)
                if (args.cells is None or name in args.cells) and str(seed) not in data["runs"].get(
                        mixer, {}).get(key, {}) and (mixer, key, seed) not in [t[:3] for t in todo]:
                    todo.append((mixer, key, seed, setting))
    print(f"{len(todo)} runs to do, {args.jobs} at a time")
    lock = threading.Lock()

    def run(job):
        mixer, key, seed, setting = job
        out_dir = os.path.join(OUT, "recipe", mixer, key.replace("=", "-").replace(",", "_"), f"seed{seed}")
        overrides = [f"--{k}={v}" for k, v in setting.items()]
        evals, whole = train_run([CONFIG.format(mixer), *overrides, f"--seed={seed}", f"--out_dir={out_dir}",
                                  *args.extra], os.path.join(out_dir, "train.log"),
                                 threads=threads_per_job(args.jobs), label=f"[{mixer} {key} seed {seed}] ")
        with lock:
            record_run(stem, data, (mixer, key, str(seed)), {**whole_record(whole), "evals": evals})

    run_side_by_side(run, todo, args.jobs)
    report(stem, data)


def summarise(data, mixer):
    """[(cell, factor, setting, [whole-split losses by seed])] for the cells of a mixer that have runs."""
    rows = []
    for name, (factor, setting) in cells(mixer).items():
        runs = data["runs"].get(mixer, {}).get(run_key(setting), {})
        if runs:
            rows.append((name, factor, setting, [runs[s]["whole_val"] for s in sorted(runs, key=int)]))
    return rows


def read_config(path):
    """A config file as train.py reads it today, to mark the cell it adopted."""
    import train
    from configurator import parse_config
    return parse_config(train.Config, [os.path.join(ROOT, path)])


def report(stem, data):
    """The table (stdout and .md), one section per mixer, and a dot plot of every cell (.png)."""
    lines = []
    for mixer in NAMES:
        rows = summarise(data, mixer)
        if not rows:
            continue
        base = statistics.mean(rows[0][3]) if rows[0][0] == "base" else None
        configs = {path: read_config(path) for path in [CONFIG.format(mixer)] +
                   (["config/shakespeare_char_cpu_gpt_nanogpt.py"] if mixer == "gpt" else [])}
        lines += [f"**{NAMES[mixer]}**, base: {describe(BASES[mixer], {k: None for k in BASES[mixer]})}", "",
                  "| cell | change from the base | seeds | whole-split val loss (mean ± std) | vs base |",
                  "| --- | --- | --- | --- | --- |"]
        for name, _, setting, losses in rows:
            std = f" ± {statistics.stdev(losses):.4f}" if len(losses) > 1 else ""
            delta = f"{statistics.mean(losses) - base:+.4f}" if base is not None and name != "base" else ""
            full = {**IMPLIED, **setting}
            mark = "".join(f" (= `{path}`)" for path, c in configs.items()
                           if all(getattr(c, k) == v for k, v in full.items()))
            lines.append(f"| {name}{mark} | {describe(setting, BASES[mixer])} | {len(losses)} | "
                         f"{statistics.mean(losses):.4f}{std} | {delta} |")
        lines.append("")
    table = "\n".join(lines)
    print(table)
    with open(f"{stem}.md", "w") as f:
        f.write(table)
    plot(f"{stem}.png", data)


def plot(path, data):
    panels = []
    for mixer in NAMES:
        rows = summarise(data, mixer)
        if rows:
            base = statistics.mean(rows[0][3]) if rows[0][0] == "base" else None
            panels.append((NAMES[mixer], [(name, losses) for name, _, _, losses in rows], base))
    dot_plot(path, panels, "whole-split val loss (dots: seeds, bar: mean; dashed: the base recipe)")


if __name__ == "__main__":
    main()
