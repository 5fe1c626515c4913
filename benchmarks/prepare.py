"""bench.py prepare: wall time and peak memory of data/text/prepare.py on a large text (tiny Shakespeare repeated),
characters and GPT-2 BPE, against the Shakespeare scripts' algorithm before data/text/prepare.py (before(), below)
on a smaller one. Each preparation runs in a process of its own, whose peak RSS the kernel reports when it ends
(wait4), started from a lean one (measure())."""
import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = {"peak_rss_mb": 1000, "char_s": 60, "gpt2_s": 180}  # the targets, for the large file


def before(tokenizer, path, out_dir):
    """data/shakespeare_char/prepare.py's and data/shakespeare/prepare.py's algorithm before data/text/prepare.py, the
    baseline: the whole text in memory, then every token of each split as a Python list."""
    import numpy as np

    from common import write_json
    with open(path, encoding="utf-8") as f:
        text = f.read()
    n = len(text)
    if tokenizer == "char":
        chars = sorted(set(text))
        stoi = {ch: i for i, ch in enumerate(chars)}
        encode, meta = (lambda s: [stoi[c] for c in s]), {"vocab_size": len(chars), "chars": chars}
    else:
        import tiktoken
        encode, meta = tiktoken.get_encoding("gpt2").encode_ordinary, {"tokenizer": "gpt2", "vocab_size": 50304}
    for split, part in {"train": text[: int(n * 0.9)], "val": text[int(n * 0.9):]}.items():
        ids = np.array(encode(part), dtype=np.uint16)
        ids.tofile(os.path.join(out_dir, f"{split}.bin"))
        meta[f"{split}_tokens"] = len(ids)
    write_json(os.path.join(out_dir, "meta.json"), meta, indent=None)


def measure(cmd):
    """Run cmd (its output to stderr); returns {seconds, peak_rss_mb, returncode}. Linux counts the memory a child
    had at its fork, its parent's, into its peak RSS, so measure() runs in a lean process of its own (measured())."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=sys.stderr)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (RUSAGE_CHILDREN is a max over all of them)
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KB
            "returncode": os.waitstatus_to_exitcode(status)}


def measured(cmd, env=None):
    """(wall seconds, peak RSS in MB) of cmd, through python -m benchmarks.prepare --measure (a ~10 MB process)."""
    res = subprocess.run([sys.executable, "-m", "benchmarks.prepare", "--measure", *cmd], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, **(env or {})})
    result = json.loads(res.stdout.splitlines()[-1]) if res.returncode == 0 and res.stdout else {"returncode": -1}
    if result["returncode"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-2000:]}")
    return result["seconds"], result["peak_rss_mb"]


def make_text(path, n_bytes):
    """n_bytes of tiny Shakespeare repeated (cut at the end), written to path."""
    spec = importlib.util.spec_from_file_location("shakespeare_char_prepare",
                                                  os.path.join(ROOT, "data", "shakespeare_char", "prepare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    corpus = module.read_text().encode()  # a local copy, $SHAKESPEARE_INPUT, or the download
    with open(path, "wb") as f:
        for _ in range(n_bytes // len(corpus)):
            f.write(corpus)
        f.write(corpus[:n_bytes % len(corpus)])


def digest(out_dir):
    """sha256 of train.bin + val.bin, and the token counts meta.json records."""
    h = hashlib.sha256()
    for split in ("train", "val"):
        with open(os.path.join(out_dir, f"{split}.bin"), "rb") as f:
            while chunk := f.read(64 << 20):
                h.update(chunk)
    with open(os.path.join(out_dir, "meta.json")) as f:
        meta = json.load(f)
    return h.hexdigest(), meta["train_tokens"] + meta["val_tokens"]


def bench_prepare(args):
    import shutil

    from benchmarks.common import print_table, save
    sizes = {"large": int(args.size * 1e6), "small": int(args.before_size * 1e6)}
    print(f"preparing {args.size:g} MB of tiny Shakespeare repeated with data/text/prepare.py, and "
          f"{args.before_size:g} MB with it and with the scripts' earlier algorithm, one process each")
    runs, load = [], [os.getloadavg()[0]]  # other work on the machine slows every run alike: recorded beside them
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        for size in sizes.values():
            make_text(os.path.join(tmp, f"text-{size}.txt"), size)
        data_dir = os.path.join(tmp, "data")  # MINRNN_DATA_DIR of the runs
        cases = [("large", "new", "char"), ("large", "new (no-op re-run)", "char"), ("large", "new", "gpt2"),
                 ("small", "before", "char"), ("small", "new", "char"), ("small", "before", "gpt2"),
                 ("small", "new", "gpt2")]
        for which, version, tokenizer in cases:
            path, name = os.path.join(tmp, f"text-{sizes[which]}.txt"), f"{which}_{tokenizer}"
            out_dir = os.path.join(data_dir, name)
            if version == "before":
                out_dir += "_before"
                os.makedirs(out_dir)
                cmd = [sys.executable, "-m", "benchmarks.prepare", "--before", tokenizer, path, out_dir]
            else:
                cmd = [sys.executable, "data/text/prepare.py", "--input", path, "--name", name,
                       "--tokenizer", tokenizer]
            seconds, rss = measured(cmd, {"MINRNN_DATA_DIR": data_dir, "CI": "true"})
            sha, tokens = digest(out_dir)
            runs.append({"input_mb": sizes[which] / 1e6, "version": version, "tokenizer": tokenizer,
                         "seconds": seconds, "peak_rss_mb": rss, "tokens": tokens, "sha256": sha})
            print(f"{version} {tokenizer} {sizes[which] / 1e6:g} MB: {seconds:.1f} s, peak RSS {rss:.0f} MB")
            if which == "small" and version == "new":  # both sets of files are there: compare, then free the disk
                runs[-1]["identical_to_before"] = sha == runs[-2]["sha256"]
                shutil.rmtree(out_dir + "_before")
            if version != "before" and (which, version, tokenizer) != ("large", "new", "char"):  # kept for the re-run
                shutil.rmtree(out_dir)
    load.append(os.getloadavg()[0])
    large = {r["tokenizer"]: r for r in runs if r["input_mb"] == sizes["large"] / 1e6 and r["version"] == "new"}
    met = {"peak_rss": all(r["peak_rss_mb"] <= TARGETS["peak_rss_mb"] for r in large.values()),
           "char_seconds": large["char"]["seconds"] <= TARGETS["char_s"],
           "gpt2_seconds": large["gpt2"]["seconds"] <= TARGETS["gpt2_s"]}
    print_table(["input MB", "version", "tokenizer", "seconds", "MB/s", "peak RSS MB", "tokens", "same as before"],
                [[f"{r['input_mb']:g}", r["version"], r["tokenizer"], f"{r['seconds']:.1f}",
                  f"{r['input_mb'] / r['seconds']:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r['tokens']:,}",
                  {True: "yes", False: "NO"}.get(r.get("identical_to_before"), "")] for r in runs])
    print(f"targets at {args.size:g} MB (peak RSS <= {TARGETS['peak_rss_mb']} MB, char <= {TARGETS['char_s']} s, "
          f"gpt2 <= {TARGETS['gpt2_s']} s): " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    save("prepare", {"device": "cpu", "cpus": len(os.sched_getaffinity(0)), "load_average_1min": load,
                     "command": f"python bench.py prepare --size {args.size:g} --before_size {args.before_size:g}",
                     "size_mb": args.size,
                     "before_size_mb": args.before_size, "targets": TARGETS, "targets_met": met, "runs": runs})


if __name__ == "__main__":  # bench_prepare's helper processes
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--before", nargs=3, metavar=("TOKENIZER", "PATH", "OUT_DIR"), help="one baseline run")
    group.add_argument("--measure", nargs=argparse.REMAINDER, help="run this command; print its seconds and RSS")
    args = parser.parse_args()
    if args.before:
        before(*args.before)
    else:
        print(json.dumps(measure(args.measure)))
