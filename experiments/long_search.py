"""
The equal-effort search at 512 tokens: every mixer from its CPU recipe (what the 64-token search found,
config/shakespeare_char_cpu_<mixer>.py) trained on 512-token windows (long_context.LONG: batch 4, 2000 iterations),
over the cells that matter most there, the same cells for all four:

1. the learning rate: the 64-token winner's, and its two neighbours (0.5x and 2x), widened by 2x while the best
   sits at an edge (the 64-token search's rule);
2. one change at a time from stage 1's best: the sequence length warmup (32 windows of 64 tokens grown to 4 of 512
   over the first 1,000 iterations, which long_context gave the GPT alone), and the other embedding tying;
3. both, where both beat stage 2's start;
4. the --finalists best cells at the config's seed (1337) over seeds 1 and 2 as well.

Every cell is chosen by the loss over the whole val split. The whole test split (five plays tiny Shakespeare lacks)
is recorded and reported beside it, and no choice reads it.

    python -m experiments.long_search --jobs 2            # every mixer; resumes where it stopped
    python -m experiments.long_search --report_only       # the tables and plot again, from the JSON

A run already in experiments_out/long_search.json is not run again, and a run that `python -m
experiments.long_context` made with the same config (the same seeds: its runs are this search's cells at the
64-token learning rate) is read from its log instead of trained again. Writes long_search.json (the truth),
long_search.md and long_search.png.
"""
import argparse
import json
import os
import statistics
import threading

import train
from configurator import parse_config
from experiments import long_context
from experiments.long_context import LONG
from experiments.runs import (
    describe,
    dot_plot,
    read_log,
    record_run,
    run_key,
    run_side_by_side,
    threads_per_job,
    train_run,
    whole_record,
)
from experiments.search import CONFIG, NAMES, fmt, fmt_diff

OUT = "experiments_out"
WARMUP = 1000  # long_context's GPT: half the run
SEEDS = (1337, 1, 2)  # long_context's: the config's seed, then 1 and 2
SCREEN = SEEDS[0]


def parsed(args):
    """A train.py command line's config, less its out_dir: two runs with equal ones are the same run."""
    c = parse_config(train.Config, args)
    c.out_dir = None
    return c


def base(mixer):
    """The mixer's CPU recipe at 512 tokens, with the searched keys spelled out."""
    c = parse_config(train.Config, [CONFIG.format(mixer), *LONG])
    return {"learning_rate": c.learning_rate, "seq_warmup_iters": 0, "tie_embeddings": c.tie_embeddings}


def train_args(mixer, setting):
    """train.py's arguments for a cell: the mixer's CPU recipe at 512 tokens, with the setting's keys."""
    return [CONFIG.format(mixer), *LONG, *[f"--{k}={v}" for k, v in setting.items()]]


def changes(mixer, setting):
    """The keys of a setting that differ from the mixer's recipe at 512 tokens."""
    start = base(mixer)
    return {k: v for k, v in setting.items() if start.get(k) != v}


def runs(data, mixer, setting, split="val"):
    """{seed: whole-split loss} of a setting's runs, on split."""
    return {int(s): r[f"whole_{split}"] for s, r in data["runs"].get(mixer, {}).get(run_key(setting), {}).items()
            if f"whole_{split}" in r}


def stage_cells(mixer, screen):
    """{cell name: (stage, setting)} of the cells that can be named from the seed-0 val losses so far (screen)."""
    start, factors = base(mixer), [0.5, 1, 2]
    while True:  # widened by 2x while the best rate sits at an edge, as the 64-token search's stage 1
        cells = {f"lr_x{f:g}": ("1 learning rate", {**start, "learning_rate": start["learning_rate"] * f})
                 for f in factors}
        if any(name not in screen for name in cells):
            return cells
        best = min(cells, key=screen.get)
        edge = {f"lr_x{factors[0]:g}": [factors[0] / 2], f"lr_x{factors[-1]:g}": [factors[-1] * 2]}.get(best)
        if not edge:
            break
        factors = sorted(factors + edge)
    start = cells[best][1]
    changes = {"seq_warmup": {"seq_warmup_iters": WARMUP}, "other_tying": {"tie_embeddings": not
                                                                            start["tie_embeddings"]}}
    two = {f"{best}+{k}": ("2 one change", {**start, **v}) for k, v in changes.items()}
    cells.update(two)
    if any(name not in screen for name in two):
        return cells
    better = [k for k in changes if screen[f"{best}+{k}"] < screen[best]]
    if len(better) == 2:
        cells[f"{best}+{'+'.join(better)}"] = ("3 both", {**start, **{k: v for c in better
                                                                     for k, v in changes[c].items()}})
    return cells


def named_and_screen(data, mixer):
    """({cell name: (stage, setting)}, {cell name: val loss at the screening seed}) as far as the runs so far name
    them."""
    screen = {}
    while True:
        named = stage_cells(mixer, screen)
        screen = {name: r[SCREEN] for name, (_, s) in named.items() if SCREEN in (r := runs(data, mixer, s))}
        if set(stage_cells(mixer, screen)) == set(named):
            return named, screen


def finalists(named, screen, n):
    """The n cells with the lowest val loss at the screening seed, once every named cell has it."""
    return [] if any(name not in screen for name in named) else sorted(screen, key=screen.get)[:n]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mixers", nargs="+", choices=list(NAMES), default=list(NAMES))
    parser.add_argument("--finalists", type=int, default=2, help="cells confirmed on seeds 1 and 2 per mixer")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, each on cpu_count/jobs threads")
    parser.add_argument("--report_only", action="store_true", help="redo the tables and plot from the JSON")
    args = parser.parse_args()
    stem = os.path.join(OUT, "long_search")
    data = {"long": LONG, "runs": {}}
    if os.path.exists(f"{stem}.json"):
        with open(f"{stem}.json") as f:
            data = json.load(f)
    lock = threading.Lock()

    def run(job):
        mixer, name, setting, seed = job
        out_dir = os.path.join(OUT, "long_search", mixer, name, f"seed{seed}")
        command = [*train_args(mixer, setting), f"--seed={seed}"]
        # long_context's run at this seed, where it is this very run
        made = os.path.join(OUT, "long_context", mixer if seed == SEEDS[0] else f"{mixer}-seed{seed}")
        done = read_log(os.path.join(made, "train.log"))
        if done and parsed(command) == parsed(long_context.run_args(mixer, None if seed == SEEDS[0] else seed)):
            evals, whole = done
        else:
            evals, whole = train_run([*command, f"--out_dir={out_dir}"], os.path.join(out_dir, "train.log"),
                                     threads=threads_per_job(args.jobs), label=f"[{mixer} at 512, {name}, {seed}] ")
        with lock:
            record_run(stem, data, (mixer, run_key(setting), str(seed)), {**whole_record(whole), "evals": evals})

    while not args.report_only:  # one round per stage, every mixer's next cells together
        screens, confirms = [], []  # every mixer's screening runs first: they name the next stage's cells
        for mixer in args.mixers:
            named, screen = named_and_screen(data, mixer)
            screens += [(mixer, n, s, SCREEN) for n, (_, s) in named.items() if n not in screen]
            confirms += [(mixer, n, named[n][1], seed) for n in finalists(named, screen, args.finalists)
                         for seed in SEEDS[1:] if seed not in runs(data, mixer, named[n][1])]
        # a round of screens (their results name the next cells), topped up to fill its last pair of jobs
        todo = screens + confirms[:-len(screens) % args.jobs] if screens else confirms
        if not todo:
            break
        print(f"{len(todo)} runs in this round, {args.jobs} at a time")
        run_side_by_side(run, todo, args.jobs)
    report(stem, data, args.finalists)


def confirmed(data, mixer, setting, split="val"):
    """A setting's losses at the three SEEDS, or None before it has all three."""
    r = runs(data, mixer, setting, split)
    return [r[s] for s in SEEDS] if all(s in r for s in SEEDS) else None


def best(data, mixer, n=2):
    """The finalist with the lowest mean val loss over the three seeds: (name, setting), or None until each of the n
    finalists has all three."""
    named, screen = named_and_screen(data, mixer)
    done = {name: confirmed(data, mixer, named[name][1]) for name in finalists(named, screen, n)}
    if not done or not all(done.values()):
        return None
    name = min(done, key=lambda k: statistics.mean(done[k]))
    return name, named[name][1]


def report(stem, data, n=2):
    """A table per mixer (every cell: seed-0 val, val and test over three seeds), each mixer at its best (chosen by
    val) with its test loss and its paired difference to the GPT's best, and a dot plot of every cell."""
    lines, summary, at_best = [], [], {}
    for mixer in NAMES:
        named, screen = named_and_screen(data, mixer)
        if not screen:
            continue
        lines += [f"**{NAMES[mixer]}** at 512 tokens, from `{CONFIG.format(mixer)}`: {describe(base(mixer), {})}",
                  "", f"| stage | cell | change from the recipe | seed {SCREEN}, val | 3 seeds, val | 3 seeds, test |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, (stage, setting) in named.items():
            screened = runs(data, mixer, setting).get(SCREEN)
            three = [fmt(v) if (v := confirmed(data, mixer, setting, split)) else "" for split in ("val", "test")]
            lines.append(f"| {stage} | {name} | {describe(setting, base(mixer))} | "
                         f"{'(not run)' if screened is None else f'{screened:.4f}'} | {three[0]} | {three[1]} |")
        lines.append("")
        if top := best(data, mixer, n):
            at_best[mixer] = top
    gpt = at_best.get("gpt")
    for mixer, (name, setting) in at_best.items():
        cells = []
        for split in ("val", "test"):
            here = confirmed(data, mixer, setting, split)
            g = confirmed(data, "gpt", gpt[1], split) if gpt and mixer != "gpt" else None
            diffs = [a - b for a, b in zip(here, g)] if here and g else None
            cells += [fmt(here) if here else "", fmt_diff(diffs) if diffs else ""]
        summary.append(f"| {NAMES[mixer]} | {name} | {describe(setting, base(mixer))} | " + " | ".join(cells) + " |")
    if summary:
        lines += ["**Each mixer at its best at 512 tokens** (the finalist with the lowest mean val loss over seeds "
                  f"{', '.join(map(str, SEEDS))}; test is reported, never chosen by; differences are to the GPT's "
                  "best, paired by seed: positive where the GPT is lower)", "",
                  "| mixer | cell | change from the recipe | val, 3 seeds | val - GPT's | test, 3 seeds | "
                  "test - GPT's |", "| --- | --- | --- | --- | --- | --- | --- |", *summary, "",
                  f"Each at its best, in one train.py run (seed {SCREEN}; --seed=1 or --seed=2 for the others). The "
                  "search ran each run on one thread: with OMP_NUM_THREADS=1 in front, a command repeats the "
                  "search's run to the digit on the machine that made it.",
                  "", "```sh", *[" ".join(["python train.py", *train_args(m, changes(m, s)),
                                           f"--out_dir=out-shakespeare-char-512-{m}"])
                                 for m, (_, s) in at_best.items()], "```", ""]
    table = "\n".join(lines)
    print(table)
    with open(f"{stem}.md", "w") as f:
        f.write(table)
    panels = []
    for m in NAMES:
        named, screen = named_and_screen(data, m)
        if screen:
            panels.append((NAMES[m], [(name, list(runs(data, m, s).values())) for name, (_, s) in named.items()],
                           runs(data, m, base(m)).get(SCREEN)))
    if panels:
        dot_plot(f"{stem}.png", panels, "whole-split val loss at 512 tokens (dots: seeds, bar: mean; dashed: the "
                                        f"64-token recipe at seed {SCREEN})")


if __name__ == "__main__":
    main()
