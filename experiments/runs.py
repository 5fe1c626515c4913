"""Run train.py as a subprocess and read its evaluation lines back: what the experiment drivers share."""
import fcntl
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from common import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL = re.compile(r"^step (\d+): train loss ([\d.]+), val loss ([\d.]+)(?:, val acc ([\d.]+))?")
WHOLE = re.compile(r"^whole (val|test) split: loss ([\d.]+)")


def read_evals(lines):
    """The evaluation lines of a train.py output: ([{step, train, val, acc}], {"val": whole-split val loss, "test":
    whole-split test loss where the dataset has a test split}, or None where the run did not finish)."""
    evals, whole = [], {}
    for line in lines:
        if m := EVAL.match(line):
            evals.append({"step": int(m[1]), "train": float(m[2]), "val": float(m[3]),
                          "acc": float(m[4]) if m[4] else None})
        elif m := WHOLE.match(line):
            whole[m[1]] = float(m[2])
    return evals, whole if "val" in whole else None


def read_log(path):
    """read_evals of a finished run's train.log, or None where there is none or the run did not finish: a driver
    trains only what this gives None for, so an interrupted series resumes where it stopped."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        evals, whole = read_evals(f)
    return (evals, whole) if whole is not None else None


def whole_record(whole):
    """A run's whole-split losses as a driver's JSON keeps them: {"whole_val": ..., "whole_test": ...}."""
    return {f"whole_{split}": loss for split, loss in whole.items()}


def train_run(args, log_path, threads=None, label=""):
    """Run `python train.py *args`, teeing its output to log_path. Returns ([{step, train, val, acc}] per eval,
    the whole-split val loss at the end or None). threads caps the run's CPU threads (for runs side by side)."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    env = {**os.environ, "CI": "true", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    lines = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        for line in proc.stdout:
            log.write(line)
            lines.append(line)
            if EVAL.match(line) or WHOLE.match(line):
                print(f"  {label}{line.strip()}", flush=True)
    if proc.wait() != 0:
        raise SystemExit(f"train.py {' '.join(args)} failed; see {log_path}")
    return read_evals(lines)


def run_key(setting):
    """A setting {key: value} as one stable string, the key of its runs in a driver's JSON."""
    return ",".join(f"{k}={setting[k]:.6g}" if isinstance(setting[k], float) else f"{k}={setting[k]}"
                    for k in sorted(setting))


def record_run(stem, data, path, value):
    """Store value at data["runs"][path[0]][path[1]]... and write stem.json atomically, merged with what is on disk
    under a file lock (another driver may be adding runs to the same JSON)."""
    with open(f"{stem}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if os.path.exists(f"{stem}.json"):
            with open(f"{stem}.json") as f:
                data["runs"] = json.load(f)["runs"]
        node = data["runs"]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
        write_json(f"{stem}.json", data, indent=1)


def keep_earlier_runs(path, data, same, keys):
    """data, with the entries under each of `keys` that the JSON at path holds and this call did not redo, when that
    JSON was written with the same values of the keys `same`: a driver run for some mixers keeps the others."""
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if all(old.get(k) == data[k] for k in same):
            for key in keys:
                data[key] = {**old[key], **data[key]}
    return data


def threads_per_job(jobs):
    """CPU threads for each of `jobs` runs side by side: on 2 cores, two 1-thread runs finish ~1.5x sooner than
    the same two runs one after the other on 2 threads each."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


def run_side_by_side(fn, items, jobs):
    """[fn(item) for item in items], `jobs` at a time (threads; the work is in the train.py subprocesses)."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        return list(pool.map(fn, items))


def save_plot(path, title, ylabel, curves, ylim=None):
    """curves: {(group, member): (steps, values)} -> a PNG, one colour per group and one line style per member."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = list(dict.fromkeys(g for g, _ in curves))
    members = list(dict.fromkeys(m for _, m in curves))
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (group, member), (xs, ys) in curves.items():
        ax.plot(xs, ys, color=f"C{groups.index(group)}", linestyle=styles[members.index(member) % len(styles)],
                label=f"{group}, {member}" if member else group)
    ax.set(title=title, xlabel="iteration", ylabel=ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def describe(setting, base):
    """The keys of setting whose values differ from base's, as "k=v, ..." ("(base)" where none do)."""
    changed = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in setting.items()
               if base.get(k) != v]
    return ", ".join(changed) or "(base)"


def dot_plot(path, panels, xlabel):
    """One panel per (title, [(row label, [loss per seed])], reference loss or None): a dot per seed, a bar at the
    mean, a dashed line at the reference; side by side with a shared x axis, rows top to bottom."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tallest = max(len(rows) for _, rows, _ in panels)  # rows of the longest panel, each a readable line
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 1.3 + 0.25 * tallest), sharex=True,
                             squeeze=False)
    for ax, (title, rows, reference) in zip(axes[0], panels):
        for y, (_, losses) in enumerate(rows):
            if losses:
                ax.scatter(losses, [y] * len(losses), color="C0", s=12, alpha=0.6)
                ax.plot([sum(losses) / len(losses)], [y], "k|", markersize=14)
        if reference is not None:
            ax.axvline(reference, color="gray", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(rows)), [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_title(title)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    fig.supxlabel(xlabel, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
