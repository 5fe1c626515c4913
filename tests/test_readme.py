"""The README's and docs/results.md's numbers come from the committed outputs of the commands they name: their tables
must match them."""
import json
import os
import statistics

import pytest
from conftest import ROOT


def read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


README = read("README.md")
RESULTS = read("docs", "results.md")


def section(title):
    """docs/results.md's text from a heading to the next heading of the same or a higher level."""
    start = RESULTS.index(title)
    level = title.split(" ")[0]
    ends = [RESULTS.find(h, start + len(title)) for h in ("\n" + level + " ", "\n" + level[:-1] + " ")]
    return RESULTS[start:min([e for e in ends if e != -1] or [len(RESULTS)])]


@pytest.mark.parametrize("table", ["experiments_out/shakespeare_cpu.md", "experiments_out/recipe.md",
                                   "experiments_out/search.md", "experiments_out/selective_copying.md",
                                   "experiments_out/shakespeare_cpu_equal_time.md", "experiments_out/long_context.md",
                                   "experiments_out/long_search.md"])
def test_experiment_tables_appear_verbatim(table):
    for line in read(table).strip().splitlines():
        assert line in RESULTS, f"{table}: {line!r} is not in docs/results.md; paste the regenerated table"


def test_train_cost_table_matches_its_json():
    rows = json.loads(read("bench_out", "train_cost.json"))["rows"]
    by = {(r["T"], r["mixer"]): r for r in rows}
    for T in sorted({r["T"] for r in rows}):
        cells = [f"{by[T, 'minGRU']['ms']:.1f} ms", f"{by[T, 'GRU']['ms']:.1f} ms",
                 f"{by[T, 'minGRU']['speedup_vs_classic']:.1f}x", f"{by[T, 'minLSTM']['ms']:.1f} ms",
                 f"{by[T, 'LSTM']['ms']:.1f} ms", f"{by[T, 'minLSTM']['speedup_vs_classic']:.1f}x",
                 f"{by[T, 'Mamba']['ms']:.1f} ms", f"{by[T, 'attention']['ms']:.1f} ms"]
        assert f"| {T} | " + " | ".join(cells) + " |" in section("## Training cost")


def test_generate_table_matches_its_json():
    results = json.loads(read("bench_out", "generate.json"))["results"]
    rows = {line.split("|")[1].strip(): line for line in section("## Generation cost").splitlines()
            if line.startswith("| ")}
    labels = {"minGRU": "minGRU", "minLSTM": "minLSTM", "Mamba": "Mamba", "GPT, full cache": "GPT, full KV cache",
              "GPT, window 256": "GPT, window 256", "GPT, tova 256": "GPT, TOVA 256",
              "GPT, h2o 256": "GPT, H2O 256",
              "GPT, re-run context (nanoGPT)": "GPT, nanoGPT-style (re-run the context)"}
    assert set(results) <= set(labels), "a model of generate.json has no README row"
    for key, res in results.items():
        row = rows[labels[key]]
        cells = [c.strip() for c in row.split("|")[2:5]]
        for n, cell in zip(("1024", "2048", "16384"), cells):
            assert cell == (f"{res[n]['ms']:.2f} ms" if n in res else "(block_size)"), (key, n, row)


def test_state_loss_table_matches_its_json():
    data = json.loads(read("bench_out", "state_loss.json"))
    rows = [line for line in section("## Loss against state size").splitlines() if line.startswith("| ")]
    for K in (8, 16, 32):
        row = next(r for r in rows if f"| K = {K} |" in r)
        losses = [next(e["val_loss"] for e in data["gpt"][p] if e["K"] == K) for p in ("window", "sink", "h2o", "tova")]
        assert row.endswith(" / ".join(f"{v:.4f}" for v in losses) + " |"), row
    full = next(e for e in data["gpt"]["window"] if e["K"] == data["block_size"])
    T = data["block_size"]
    assert f"| GPT, full cache | {T} tokens | {full['state_bytes']:,} | {full['val_loss']:.4f} |" in rows
    for name, label in (("mingru", "minGRU"), ("minlstm", "minLSTM"), ("mamba", "Mamba")):
        r = data["rnn"][name]
        row = next(x for x in rows if x.startswith(f"| {label} |"))
        assert row.endswith(f"| {r['state_bytes']:,} | {r['val_loss']:.4f} |"), row


def test_gpu_tables_match_their_json():
    text = section("## On a GPU")
    scan = {(r["T"], r["backend"]): r["ms"] for r in json.loads(read("bench_out", "gpu_scan.json"))["rows"]}
    for T in sorted({T for T, _ in scan}):
        cells = [f"{scan[T, b]:.2f} ms" for b in ("log", "chunked_log", "chunked", "triton")]
        assert f"| {T} | " + " | ".join(cells) + " |" in text
    cost = {(r["T"], r["mixer"]): r for r in json.loads(read("bench_out", "gpu_train_cost.json"))["rows"]}
    for T in sorted({T for T, _ in cost}):
        cells = []
        for rnn, classic in (("minGRU", "GRU"), ("minLSTM", "LSTM")):
            cells += [f"{cost[T, rnn]['ms']:.2f} ms", f"{cost[T, classic]['ms']:.2f} ms",
                      f"{cost[T, rnn]['speedup_vs_classic']:.1f}x"]
        cells.append(f"{cost[T, 'attention']['ms']:.2f} ms")
        assert f"| {T} | " + " | ".join(cells) + " |" in text
    names = {"attn": "GPT", "mingru": "minGRU", "minlstm": "minLSTM"}
    for r in json.loads(read("bench_out", "gpu_throughput_baby.json"))["rows"]:
        row = (f"| {names[r['mixer']]} | {'on' if r['compile'] else 'off'} | {r['dtype']} | {r['scan'] or '-'} | "
               f"{r['ms_per_iter']:.2f} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} |")
        assert row in text


def test_time_to_loss_table_matches_its_json():
    text = section("## Time to loss")
    names = {"gpt": "GPT", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}
    for mixer, r in json.loads(read("bench_out", "time_to_loss.json"))["results"].items():
        last, reach = r["curve"][-1], r["reach_gpt_final"]
        at = "never" if reach["iter"] is None else f"iteration {reach['iter']}, {reach['seconds']:.1f} s"
        share = "" if reach["seconds"] is None else f"{reach['fraction_of_gpt_time']:.1%}"
        assert f"| {names[mixer]} | {last['val_loss']:.4f} | {last['seconds']:.1f} | {at} | {share} |" in text


def test_throughput_table_matches_its_json():
    text = section("## Training throughput")
    names = {"attn": "attn", "mingru": "minGRU", "minlstm": "minLSTM", "mamba": "Mamba"}
    recurrence = {"": "-", "cpu.c cell": "`cpu.c` cell", "chunked, C_KERNELS=0": "chunked, `C_KERNELS=0`",
                  "cpu.c selective scan": "`cpu.c` selective scan",
                  "c": "`c`", "chunked": "chunked"}
    runs = [json.loads(read("bench_out", f"{name}.json")) for name in ("throughput", "throughput_T1024")]
    for r in [r for run in runs for r in run["rows"]]:
        row = (f"| {names[r['mixer']]} | {r['optimizer']} | {'on' if r['compile'] else 'off'} | "
               f"{recurrence[r['scan']]} | {r['ms_per_iter']:.1f} | {r['tokens_per_s']:,.0f} | "
               f"{r['tflops'] * 1e3:.1f} |")
        assert row in text, row
    steps = {(r["mixer"], r["optimizer"]): r["ms_per_step"]  # the optimizer step alone, at T=64
             for r in json.loads(read("bench_out", "throughput.json"))["optimizer_rows"]}
    for mixer in names:
        row = f"| {names[mixer]} | {steps[mixer, 'adamw']:.2f} ms | {steps[mixer, 'muon']:.2f} ms |"
        assert row in text, row


def test_length_table_matches_its_json():
    text = section("## Long context")
    for r in json.loads(read("bench_out", "length.json"))["results"].values():
        T, b = r["block_size"], {(x["from"], x["to"]): x["loss"] for x in r["buckets"]}
        cells = [b[T // 2, T], b[T, 2 * T], b[2 * T, 4 * T], b[4 * T, 8 * T]]
        row = (f"| {T} | " + " | ".join(f"{v:.4f}" for v in cells) +
               f" | {max(cells[1:]) - min(cells[1:]):.4f} | {b[2048, 4096]:.4f} |")
        assert row in text, row
        assert r["spread_T_to_8T"] == pytest.approx(max(cells[1:]) - min(cells[1:]))


@pytest.mark.parametrize("tokens", [512, 1024, 2048])
def test_long_context_state_loss_table_matches_its_json(tokens):
    """The state-size tables at 512 tokens and, for the RoPE GPT, past its block_size (1,024 and 2,048)."""
    data = json.loads(read("bench_out", f"state_loss_{tokens}.json"))
    assert data["block_size"] == tokens
    text = section("## Long context")
    policies = ("window", "sink", "h2o", "tova")
    for K in sorted({e["K"] for e in data["gpt"]["window"]}):
        at = {p: next(e for e in data["gpt"][p] if e["K"] == K) for p in policies}
        label = f"{K} (full cache)" if K == data["block_size"] else f"{K}"
        row = (f"| {label} | {at['window']['state_bytes']:,} | " +
               " | ".join(f"{at[p]['val_loss']:.4f}" for p in policies) + " |")
        assert row in text, row
    for name, label in (("mingru", "minGRU"), ("minlstm", "minLSTM"), ("mamba", "Mamba")):
        r = data["rnn"][name]
        assert f"| {label} | {r['state_bytes']:,} | {r['val_loss']:.4f} |" in text, name


def headline():
    return README.split("## Headline")[1].split("\n## ")[0]


def test_readme_headline_matches_the_results():
    """The headline table's losses and paired differences are the Shakespeare table's (test and val), its state bytes
    state_loss.json's, and its times throughput.json's eager ratios to the GPT."""
    lines = [line for line in headline().splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = {cells[0]: dict(zip(header, cells)) for line in lines[1:]
            if (cells := [c.strip() for c in line.split("|")[1:-1]])}
    # the Shakespeare table's losses, which rerun the search's summary (each mixer at its best, three seeds): the
    # configs hold the search's winners, and a run repeats exactly on one machine; the search's runs were made on
    # several, whose float rounding moves a loss by up to ~0.008, so a mean moves by less than 0.01
    table = read("experiments_out", "shakespeare_cpu.md").splitlines()
    columns = [c.strip() for c in table[0].split("|")[1:-1]]
    shakespeare = {cells[0]: dict(zip(columns, cells)) for line in table[2:]
                   if (cells := [c.strip() for c in line.split("|")[1:-1]])}
    summary = read("experiments_out", "search.md").split("**Each mixer at its best**")[1]
    searched = {line.split("|")[1].strip(): line.split("|")[4].strip()
                for line in summary.splitlines() if line.startswith("| ") and "---" not in line
                and not line.startswith("| mixer |")}
    assert searched.keys() == shakespeare.keys()
    for name, loss in searched.items():
        val = shakespeare[name]["whole val split (mean ± std)"]
        assert abs(float(loss.split(" ")[0]) - float(val.split(" ")[0])) < 0.01, name
    state = json.loads(read("bench_out", "state_loss.json"))
    eager = {r["mixer"]: r["ms_per_iter"] for r in json.loads(read("bench_out", "throughput.json"))["rows"]
             if not r["compile"] and r["scan"] != "chunked, C_KERNELS=0"}
    for name, label, key in (("GPT (attention)", "GPT", "attn"), ("minGRU", "minGRU", "mingru"),
                             ("minLSTM", "minLSTM", "minlstm"), ("Mamba", "Mamba", "mamba")):
        row, source = rows[label], shakespeare[name]
        assert row["test loss, unseen plays (3 seeds)"] == source["whole test split, unseen plays"], label
        assert row["test - GPT's, paired by seed"] == source["test - GPT's, paired by seed"], label
        assert row["val loss, whole split (3 seeds)"] == source["whole val split (mean ± std)"], label
        full = max(e["state_bytes"] for e in state["gpt"]["window"])  # the full cache, K = block_size
        nbytes = full if key == "attn" else state["rnn"][key]["state_bytes"]
        assert row["state per sequence"].startswith(f"{nbytes:,} bytes"), label
        assert row["training time per iteration"].startswith(f"{eager[key] / eager['attn']:.2f}x"), label
    assert len(README.splitlines()) <= 300


def test_readme_headline_differences_come_from_the_results():
    """Each paired difference the headline's sentences quote (64 tokens and equal CPU time: the Shakespeare
    drivers' JSON, as "0.020 ± 0.005", the GPT's loss minus the RNN's; 512 tokens: long_context.json, as
    "0.0175 ± 0.0033", the RNN's minus the GPT's)."""
    text = " ".join(headline().split())
    for stem in ("shakespeare_cpu", "shakespeare_cpu_equal_time"):
        pairs = json.loads(read("experiments_out", f"{stem}.json"))["paired"]
        for mixer, by_split in pairs.items():
            test = by_split["test"]
            assert test["mean"] < 0 and f"{-test['mean']:.3f} ± {test['std']:.3f}" in text, (stem, mixer)
    from experiments.long_context import per_seed
    data = json.loads(read("experiments_out", "long_context.json"))
    gpt = per_seed(data["gpt"], "test")
    for mixer in ("mingru", "minlstm", "mamba"):
        diffs = [a - b for a, b in zip(per_seed(data[mixer], "test"), gpt)]
        mean, std = statistics.mean(diffs), statistics.stdev(diffs)
        assert mean > 0 and f"{mean:.4f} ± {std:.4f}" in text, mixer  # the GPT below the RNN at 512
    # the search at 512 tokens: each RNN's test difference to the GPT from its summary, as the table has it
    summary = read("experiments_out", "long_search.md").split("**Each mixer at its best at 512 tokens**")[1]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in summary.splitlines()
            if line.startswith("| ") and "---" not in line and not line.startswith("| mixer |")]
    for row in rows[1:]:  # the GPT first, then the RNNs
        assert row[6].lstrip("+") in text, row[0]
