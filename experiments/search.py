"""
The equal-effort search: every mixer gets the same staged cells on the CPU recipe (block 64, batch 12, 4 layers,
128 dims, 2000 iterations), each from the mixer's recipe before the search (BASES: its shipped CPU config, AdamW),
screened on seed 0, with the finalists confirmed on seeds 1 and 2. Every cell is scored by the loss over the whole
val split at the end of training.

    python -m experiments.search                          # every mixer, 2 runs side by side
    python -m experiments.search --mixers gpt mingru --finalists 1
    python -m experiments.search --report_only            # the tables and plot again, from the JSON
    python -m experiments.search --test                   # the confirmed cells' runs again, for the test split

The stages, each chosen from the results before it by the same rule for every mixer:
1. optimizer x learning rate: AdamW at the base's learning rate (experiments.recipe bracketed AdamW's around it),
   Muon at 0.5x, 1x and 2x that rate, widened by factors of 2 while the best Muon rate sits at an edge;
2. one change at a time from stage 1's best: the WSD schedule, the other init, the other embedding tying, RMSNorm, a
   squared-ReLU MLP, and for the GPT its modern options, RoPE and QK-norm;
3. every stage-2 change that beat stage 2's start, together (where there are two or more);
4. the `--finalists` best cells at seed 0 over seeds 1 and 2 as well;
5. one optimizer detail at a time from stage 4's finalist with the lowest mean: the other weight decay (0 <-> 0.1)
   and, with Muon, the learning rate of its AdamW part (embeddings, lm_head, gains) at 0.3x and 3x Muon's; then
   stage 4's rule again over every cell, so a stage-5 cell among the best at seed 0 gets seeds 1 and 2 too.
A run already in experiments_out/search.json is not run again, so an interrupted search resumes where it stopped.
Writes search.json (the truth), search.md and search.png.

The search was run before the test split existed. --test trains each confirmed cell's three runs again (the same
command) where the dataset has test.bin, and adds the run's whole test split loss to its record ("whole_test",
with that run's own val loss as "retest_val"; "whole_val" stays the one every choice was made by). The tables
report test beside val; no choice reads it.
"""
import argparse
import json
import os
import statistics
import threading

from experiments.runs import (
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
NAMES = {"gpt": "GPT (attention)", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}
CONFIG = "config/shakespeare_char_cpu_{}.py"
# each mixer's recipe before the search, every searched key spelled out, so that a cell means the same run whatever
# the config file says after the search adopts its winner
DEFAULTS = {"optimizer": "adamw", "schedule": "cosine", "norm": "layernorm", "activation": "gelu"}
BASES = {"gpt": {**DEFAULTS, "learning_rate": 3e-3, "weight_decay": 0.1, "init": "gpt2", "tie_embeddings": True,
                 "pos": "learned", "qk_norm": False},
         "mingru": {**DEFAULTS, "learning_rate": 3e-3, "weight_decay": 0.0, "init": "torch", "tie_embeddings": False},
         "minlstm": {**DEFAULTS, "learning_rate": 3e-3, "weight_decay": 0.0, "init": "torch",
                     "tie_embeddings": False},
         "mamba": {**DEFAULTS, "learning_rate": 3e-3, "weight_decay": 0.0, "init": "mamba", "tie_embeddings": True}}
OTHER_INIT = {"gpt2": "torch", "torch": "gpt2", "mamba": "gpt2"}


def stage_cells(mixer, screen, means, n):
    """[(stage, {cell name: setting})] for the stages whose cells can be named from the losses so far (screen:
    {cell name: seed-0 loss}, means: {cell name: mean over seeds 0-2}, n: finalists); the list stops at the first
    stage that waits for runs not yet made."""
    base = BASES[mixer]
    stages = [("1 optimizer x lr", {"adamw": base, **{f"muon_lr_x{f:g}": {**base, "optimizer": "muon",
                                                                           "learning_rate": base["learning_rate"] * f}
                                                      for f in (0.5, 1, 2)}})]
    while True:  # widen Muon's bracket while its best rate is at an edge
        cells = {k: v for _, stage in stages for k, v in stage.items()}
        if any(name not in screen for name in cells):
            return stages
        factors = sorted(float(name.split("_x")[1]) for name in cells if name.startswith("muon_lr_x"))
        best = min(factors, key=lambda f: screen[f"muon_lr_x{f:g}"])
        edge = best * 2 if best == factors[-1] else best / 2 if best == factors[0] else None
        if edge is None or not 1 / 16 <= edge <= 16:
            break
        stages.append(("1 optimizer x lr", {f"muon_lr_x{edge:g}": {**base, "optimizer": "muon",
                                                                    "learning_rate": base["learning_rate"] * edge}}))
    start_name = min(cells, key=screen.get)
    start = cells[start_name]
    changes = {"wsd": {"schedule": "wsd"}, "other_init": {"init": OTHER_INIT[start["init"]]},
               "other_tying": {"tie_embeddings": not start["tie_embeddings"]}, "rmsnorm": {"norm": "rmsnorm"},
               "relu2": {"activation": "relu2"}}
    if mixer == "gpt":
        changes.update(rope={"pos": "rope"}, qk_norm={"qk_norm": True})
    two = {f"{start_name}+{k}": {**start, **v} for k, v in changes.items()}
    stages.append(("2 one change", two))
    if any(name not in screen for name in two):
        return stages
    better = [k for k in changes if screen[f"{start_name}+{k}"] < screen[start_name]]
    if len(better) >= 2:
        combined = {k: v for c in better for k, v in changes[c].items()}
        stages.append(("3 combined", {f"{start_name}+{'+'.join(better)}": {**start, **combined}}))
    cells = {k: v for _, stage in stages for k, v in stage.items()}
    if any(name not in screen for name in cells):
        return stages
    tops = sorted(cells, key=screen.get)[:n]  # stage 4: main confirms them on seeds 1 and 2
    if any(name not in means for name in tops):
        return stages
    start_name = min(tops, key=means.get)
    start = cells[start_name]
    details = {"other_wd": {"weight_decay": 0.0 if start["weight_decay"] else 0.1}}
    if start["optimizer"] == "muon":
        details.update({f"adamw_lr_x{f:g}": {"adamw_lr_scale": f} for f in (0.3, 3.0)})
    stages.append(("5 optimizer details", {f"{start_name}+{k}": {**start, **v} for k, v in details.items()}))
    return stages


def all_cells(mixer, screen, means, n):
    return {name: (stage, setting) for stage, cells in stage_cells(mixer, screen, means, n)
            for name, setting in cells.items()}


def losses(data, mixer, setting):
    """{seed: whole-split val loss} of a setting's runs."""
    runs = data["runs"].get(mixer, {}).get(run_key(setting), {})
    return {int(s): r["whole_val"] for s, r in runs.items()}


def test_losses(data, mixer, setting):
    """{seed: whole test split loss} of a setting's runs that have one: reported, never chosen by."""
    runs = data["runs"].get(mixer, {}).get(run_key(setting), {})
    return {int(s): r["whole_test"] for s, r in runs.items() if "whole_test" in r}


def cell_losses(data, mixer, named):
    """{cell name: {seed: loss}} of the named cells."""
    return {name: losses(data, mixer, setting) for name, (_, setting) in named.items()}


def three_seeds(runs):
    """[loss at seeds 0, 1 and 2] of {seed: loss}, or None before all three have run."""
    return [runs[s] for s in (0, 1, 2)] if all(s in runs for s in (0, 1, 2)) else None


def confirmed(runs):
    """{cell name: [loss at seeds 0, 1 and 2]} of the cells in runs (cell_losses) run on all three seeds."""
    return {name: v for name, r in runs.items() if (v := three_seeds(r))}


def screen_losses(data, mixer, n):
    """({cell name: (stage, setting)} of the cells named so far, {cell name: seed-0 loss})."""
    cells, means = {}, {}
    while True:  # the cells named so far, until no new one can be named
        named = all_cells(mixer, cells, means, n)
        runs = cell_losses(data, mixer, named)
        cells = {name: r[0] for name, r in runs.items() if 0 in r}
        means = {name: statistics.mean(v) for name, v in confirmed(runs).items()}
        if set(all_cells(mixer, cells, means, n)) == set(named):
            return named, cells


def finalists(named, screen, n):
    """The n cells with the lowest seed-0 loss, once every named cell has it (else none)."""
    if any(name not in screen for name in named):
        return []
    return sorted(screen, key=screen.get)[:n]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixers", nargs="+", choices=list(NAMES), default=list(NAMES))
    parser.add_argument("--finalists", type=int, default=2, help="cells confirmed on seeds 1 and 2 per mixer")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--report_only", action="store_true", help="redo the tables and plot from the JSON")
    parser.add_argument("--test", action="store_true", help="train the confirmed cells' runs again for their test "
                        "split loss (data/shakespeare_char/test.bin: prepare.py --plays)")
    args = parser.parse_args()
    stem = os.path.join(OUT, "search")
    data = {"runs": {}}
    if os.path.exists(f"{stem}.json"):
        with open(f"{stem}.json") as f:
            data = json.load(f)
    lock = threading.Lock()

    def run(job):
        mixer, name, setting, seed = job
        out_dir = os.path.join(OUT, "search", mixer, name, f"seed{seed}")
        overrides = [f"--{k}={v}" for k, v in setting.items()]
        evals, whole = train_run([CONFIG.format(mixer), *overrides, f"--seed={seed}", f"--out_dir={out_dir}"],
                                 os.path.join(out_dir, "train.log"), threads=threads_per_job(args.jobs),
                                 label=f"[{mixer} {name} seed {seed}] ")
        key = (mixer, run_key(setting), str(seed))
        if args.test:  # the earlier record keeps its val and curve, the choices' evidence
            if "test" not in whole:
                raise SystemExit("--test needs data/shakespeare_char/test.bin: python "
                                 "data/shakespeare_char/prepare.py --plays")
            record = {**data["runs"][mixer][key[1]][key[2]], "whole_test": whole["test"], "retest_val": whole["val"]}
        else:
            record = {**whole_record(whole), "evals": evals}
        with lock:
            record_run(stem, data, key, record)

    if args.test:  # each confirmed cell's runs without a test loss, trained again
        todo = []
        for mixer in args.mixers:
            named, _ = screen_losses(data, mixer, args.finalists)
            done = confirmed(cell_losses(data, mixer, named))
            todo += [(mixer, name, named[name][1], seed) for name in done
                     for seed in (0, 1, 2) if seed not in test_losses(data, mixer, named[name][1])]
        print(f"{len(todo)} runs again for the test split, {args.jobs} at a time")
        run_side_by_side(run, todo, args.jobs)
    while not args.report_only and not args.test:  # one round per stage: the next cells, then what they make nameable
        todo = []
        for mixer in args.mixers:
            named, screen = screen_losses(data, mixer, args.finalists)
            todo += [(mixer, n, s, 0) for n, (_, s) in named.items() if n not in screen]
            if not todo or todo[-1][0] != mixer:  # this mixer's screen is done: its finalists' other seeds
                todo += [(mixer, n, named[n][1], seed) for n in finalists(named, screen, args.finalists)
                         for seed in (1, 2) if seed not in losses(data, mixer, named[n][1])]
        if not todo:
            break
        print(f"{len(todo)} runs in this round, {args.jobs} at a time")
        run_side_by_side(run, todo, args.jobs)
    report(stem, data, args.finalists)


def best(data, mixer, named):
    """The cell with the lowest mean over three seeds (None before any finalist has them): (name, [losses])."""
    done = confirmed(cell_losses(data, mixer, named))
    return min(done.items(), key=lambda kv: statistics.mean(kv[1])) if done else None


def fmt(values):
    return f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def fmt_diff(diffs):
    """fmt of paired differences, signed: "+0.0105 ± 0.0093" where the mean is positive."""
    return ("+" if statistics.mean(diffs) >= 0 else "") + fmt(diffs)


def tested(data, mixer, setting):
    """A cell's test loss over seeds 0-2 as a table cell ("" until --test has run all three)."""
    return fmt(v) if (v := three_seeds(test_losses(data, mixer, setting))) else ""


def report(stem, data, n):
    """One table per mixer with the same rows (stage, cell, change from the base, seed 0, three seeds), a summary
    table of each mixer at its best with its paired differences to the GPT's, and a dot plot of every cell."""
    lines, at_best = [], {}
    for mixer in NAMES:
        named, screen = screen_losses(data, mixer, n)
        if not screen:
            continue
        lines += [f"**{NAMES[mixer]}**, base (`{CONFIG.format(mixer)}` before the search): "
                  f"{describe(BASES[mixer], {})}", "",
                  "| stage | cell | change from the base | seed 0 | seeds 0-2 (mean ± std) | seeds 0-2, test |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, (stage, setting) in named.items():
            runs = losses(data, mixer, setting)
            three = fmt(v) if (v := three_seeds(runs)) else ""
            seed0 = f"{runs[0]:.4f}" if 0 in runs else "(not run)"
            lines.append(f"| {stage} | {name} | {describe(setting, BASES[mixer])} | {seed0} | {three} | "
                         f"{tested(data, mixer, setting)} |")
        lines.append("")
        if top := best(data, mixer, named):
            at_best[mixer] = top[0], named[top[0]][1]
    summary = []
    for mixer, (name, setting) in at_best.items():
        cells = []
        for of in (losses, test_losses):  # val, then test
            here = three_seeds(of(data, mixer, setting))
            gpt = three_seeds(of(data, "gpt", at_best["gpt"][1])) if "gpt" in at_best and mixer != "gpt" else None
            cells += [fmt(here) if here else "", fmt_diff([a - b for a, b in zip(here, gpt)]) if here and gpt else ""]
        summary.append(f"| {NAMES[mixer]} | {name} | {describe(setting, BASES[mixer])} | " + " | ".join(cells) + " |")
    if summary:
        lines += ["**Each mixer at its best** (the finalist with the lowest mean over seeds 0, 1 and 2; test is "
                  "reported, never chosen by; differences are to the GPT's best, paired by seed: negative where the "
                  "mixer is lower)", "",
                  "| mixer | cell | change from the base | whole-split val loss, 3 seeds | val - GPT's | "
                  "whole test split, 3 seeds | test - GPT's |", "| --- | --- | --- | --- | --- | --- | --- |",
                  *summary, ""]
    table = "\n".join(lines)
    print(table)
    with open(f"{stem}.md", "w") as f:
        f.write(table)
    plot(f"{stem}.png", data, n)


def plot(path, data, n):
    panels = []
    for mixer in NAMES:
        named, screen = screen_losses(data, mixer, n)
        if screen:
            rows = [(name.replace("muon_lr_", "muon "), list(losses(data, mixer, setting).values()))
                    for name, (_, setting) in named.items()]
            panels.append((NAMES[mixer], rows, losses(data, mixer, BASES[mixer]).get(0)))
    dot_plot(path, panels, "whole-split val loss (dots: seeds, bar: mean; dashed: the base at seed 0)")


if __name__ == "__main__":
    main()
