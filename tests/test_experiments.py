"""The experiment drivers, on runs too short to learn anything: they train, collect every eval, and report."""
import json
import math
import statistics
import sys

import pytest

import train
from configurator import parse_config
from experiments import long_context, long_search, recipe, search, selective_copying, shakespeare


def run_driver(module, monkeypatch, tmp_path, argv):
    monkeypatch.setattr(module, "OUT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    module.main()


def test_shakespeare_driver_reports_mean_and_std_over_seeds(char_dataset, tmp_path, monkeypatch, capsys):
    run_driver(shakespeare, monkeypatch, tmp_path, ["--seeds", "2", "--mixers", "mingru", "--jobs", "2", "--",
                                                    "--max_iters=4", "--eval_interval=2", "--eval_iters=1"])
    data = json.loads((tmp_path / "shakespeare_cpu.json").read_text())
    runs = data["curves"]["mingru"]
    assert [[e["step"] for e in run] for run in runs] == [[0, 2, 4], [0, 2, 4]]
    finals = data["summary"]["mingru"]["finals"]  # whole-split losses, close to the last 1-batch estimates
    assert finals[0] != finals[1], "the two seeds trained identical models"
    assert finals == pytest.approx([run[-1]["val"] for run in runs], abs=0.3)
    assert data["summary"]["mingru"]["mean"] == pytest.approx(statistics.mean(finals))
    assert data["summary"]["mingru"]["std"] == pytest.approx(statistics.stdev(finals))
    test = data["summary"]["mingru"]["test"]  # the fixture's dataset has a test split: reported beside val
    assert len(test["finals"]) == 2 and test["finals"] != finals and test["mean"] == statistics.mean(test["finals"])
    table = (tmp_path / "shakespeare_cpu.md").read_text()
    best = min((0, 2, 4), key=lambda i: statistics.mean(run[i // 2]["val"] for run in runs))
    assert f"| minGRU | {statistics.mean(finals):.4f} ± {statistics.stdev(finals):.4f} | " \
           f"{test['mean']:.4f} ± {test['std']:.4f} |" in table
    assert table.splitlines()[2].endswith(f"| iteration {best} |")
    assert (tmp_path / "shakespeare_cpu.png").stat().st_size > 0

    (tmp_path / "shakespeare_cpu.md").unlink()
    run_driver(shakespeare, monkeypatch, tmp_path, ["--report_only"])
    assert (tmp_path / "shakespeare_cpu.md").read_text() == table

    # another mixer, run the same way, joins the JSON; the runs already there stay
    run_driver(shakespeare, monkeypatch, tmp_path, ["--seeds", "2", "--mixers", "minlstm", "--jobs", "2", "--",
                                                    "--max_iters=4", "--eval_interval=2", "--eval_iters=1"])
    joined = json.loads((tmp_path / "shakespeare_cpu.json").read_text())
    assert list(joined["summary"]) == ["mingru", "minlstm"] and joined["summary"]["mingru"] == data["summary"]["mingru"]


def test_paired_differences_are_taken_seed_by_seed():
    summary = {"gpt": {**shakespeare.spread([1.60, 1.58, 1.62]), "test": shakespeare.spread([1.70, 1.69, 1.74])},
               "mingru": {**shakespeare.spread([1.57, 1.56, 1.58]), "test": shakespeare.spread([1.69, 1.66, 1.73])},
               "mamba": shakespeare.spread([1.59, 1.57, 1.61])}  # no test split: val only
    pairs = shakespeare.paired(summary)
    assert pairs["mingru"]["val"]["finals"] == pytest.approx([-0.03, -0.02, -0.04])
    assert pairs["mingru"]["test"]["mean"] == pytest.approx(-0.0167, abs=1e-4)
    assert pairs["mingru"]["test"]["std"] == pytest.approx(statistics.stdev([-0.01, -0.03, -0.01]))
    assert set(pairs["mamba"]) == {"val"} and "gpt" not in pairs


def test_equal_time_gives_the_faster_mixers_more_iterations(tmp_path):
    rows = [{"mixer": m, "compile": c, "scan": scan, "ms_per_iter": ms} for m, c, scan, ms in [
        ("attn", False, "", 90.0), ("attn", True, "", 70.0), ("mingru", False, "cpu.c cell", 75.0),
        ("mingru", False, "chunked, C_KERNELS=0", 100.0), ("mamba", False, "cpu.c selective scan", 120.0)]]
    (tmp_path / "throughput.json").write_text(json.dumps({"rows": rows}))
    assert shakespeare.equal_time_iters(2000, str(tmp_path / "throughput.json")) == {
        "gpt": 2000, "mingru": 2400, "mamba": 1500}


def test_reach_gpt_finds_the_first_eval_at_or_below_the_gpts_final_loss():
    curve = lambda *vals: [{"step": 10 * i, "val": v} for i, v in enumerate(vals)]  # noqa: E731
    curves = {"gpt": [curve(4, 3, 2.0), curve(4, 3, 2.2)],  # final: 2.1 on average
              "mingru": [curve(4, 2.0, 1.9), curve(4, 2.3, 1.9)],  # mean 2.15 at step 10: not yet
              "minlstm": [curve(4, 2.1, 2.0), curve(4, 2.0, 2.0)],  # mean 2.05 at step 10
              "slow": [curve(4, 3, 2.5)], "overfits": [curve(4, 1.5, 1.8)]}
    assert shakespeare.reach_gpt(curves) == {"gpt": 20, "mingru": 20, "minlstm": 10, "slow": None, "overfits": 10}
    # the eval with the lowest seed-mean loss: the last, unless the model got worse since
    assert shakespeare.best_step(curves) == {"gpt": 20, "mingru": 20, "minlstm": 20, "slow": 20, "overfits": 10}


def test_selective_copying_driver_tabulates_accuracy_by_layers(tmp_path, monkeypatch):
    run_driver(selective_copying, monkeypatch, tmp_path, [
        "--layers", "1", "2", "--mixers", "minlstm", "--", "--copy_seq_len=16", "--copy_n_data=4",
        "--block_size=20", "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--batch_size=4"])
    data = json.loads((tmp_path / "selective_copying.json").read_text())
    assert set(data["results"]) == {"minlstm-1", "minlstm-2"}
    accs = [data["results"][k]["final_acc"] for k in ("minlstm-1", "minlstm-2")]
    assert all(0 <= a <= 1 for a in accs)
    table = (tmp_path / "selective_copying.md").read_text().splitlines()
    assert table[0] == "| mixer | 1 layer | 2 layers |"
    assert table[2] == f"| minlstm | {accs[0]:.2%} | {accs[1]:.2%} |"
    # a second call for another mixer adds its row and keeps the first's; Mamba runs with its own layer shape
    run_driver(selective_copying, monkeypatch, tmp_path, [
        "--layers", "1", "--mixers", "mamba", "--", "--copy_seq_len=16", "--copy_n_data=4",
        "--block_size=20", "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--batch_size=4"])
    data = json.loads((tmp_path / "selective_copying.json").read_text())
    assert set(data["results"]) == {"minlstm-1", "minlstm-2", "mamba-1"}
    log = (tmp_path / "selective_copying" / "mamba-1layer" / "train.log").read_text()
    assert "'expansion': 2.0" in log and "'conv': 4" in log and "'mixer': 'mamba'" in log


def test_long_context_driver_trains_what_is_missing_with_each_mixers_arguments(char_dataset, tmp_path, monkeypatch):
    tiny = ["--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--n_layer=1", "--n_head=2", "--n_embd=16",
            "--block_size=32", "--seq_warmup_start=8"]
    run_driver(long_context, monkeypatch, tmp_path, ["--mixers", "gpt", "mingru", "--train_only", "--", *tiny])
    data = json.loads((tmp_path / "long_context.json").read_text())
    assert set(data) == {"gpt", "mingru"} and all(r["whole_split_val_loss"] > 0 for r in data.values())
    assert "--seq_warmup_iters=1000" in data["gpt"]["train_args"] and "--block_size=512" in data["gpt"]["train_args"]
    assert "--seq_warmup_iters=1000" not in data["mingru"]["train_args"]
    assert "'seq_warmup_iters': 1000" in (tmp_path / "long_context" / "gpt" / "train.log").read_text()
    # finished runs are not trained again; the JSON still lists them
    monkeypatch.setattr(long_context, "train_run", lambda *a, **k: pytest.fail("trained a finished run again"))
    run_driver(long_context, monkeypatch, tmp_path, ["--mixers", "gpt", "mingru", "--train_only", "--", *tiny])
    assert json.loads((tmp_path / "long_context.json").read_text()) == data


def test_long_context_driver_adds_seeds_and_their_spread(char_dataset, tmp_path, monkeypatch):
    tiny = ["--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--n_layer=1", "--n_head=2", "--n_embd=16",
            "--block_size=32"]
    run_driver(long_context, monkeypatch, tmp_path, ["--mixers", "mingru", "--seeds", "2", "--train_only", "--",
                                                     *tiny])
    r = json.loads((tmp_path / "long_context.json").read_text())["mingru"]
    assert "'seed': 1" in (tmp_path / "long_context" / "mingru-seed1" / "train.log").read_text()
    assert "'seed': 1337" in (tmp_path / "long_context" / "mingru" / "train.log").read_text()
    losses = [r["whole_split_val_loss"], r["other_seeds"]["1"]]
    assert losses[0] != losses[1]  # two seeds, two different runs
    assert r["mean"] == pytest.approx(sum(losses) / 2)
    assert r["std"] == pytest.approx(abs(losses[0] - losses[1]) / 2 ** 0.5)


def test_long_context_table_pairs_each_rnn_with_the_gpt_seed_by_seed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(long_context, "OUT", str(tmp_path))
    data = {"gpt": {"whole_split_val_loss": 1.46, "other_seeds": {"2": 1.45, "1": 1.47},
                    "whole_split_test_loss": 1.62, "other_seeds_test": {"1": 1.63, "2": 1.61}},
            "mingru": {"whole_split_val_loss": 1.48, "other_seeds": {"1": 1.50, "2": 1.46},
                       "whole_split_test_loss": 1.66, "other_seeds_test": {"1": 1.66, "2": 1.66}},
            "mamba": {"whole_split_val_loss": 1.49}}  # one seed, no test split
    long_context.report(data)
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in (tmp_path / "long_context.md").read_text()
            .splitlines()[2:]}
    # minGRU - GPT by seed (1337, 1, 2): val +0.02, +0.03, +0.01; test +0.04, +0.03, +0.05
    assert rows["minGRU"][2] == "+0.0200 ± 0.0100" and rows["minGRU"][3] == "+0.0400 ± 0.0100"
    assert rows["minGRU"][4] == "1.4800, 1.5000, 1.4600" and rows["GPT (attention)"][2] == ""
    assert rows["Mamba"][:4] == ["1.4900", "", "+0.0300", ""]
    assert "| minGRU |" in capsys.readouterr().out


def test_a_failed_run_stops_the_driver_and_names_its_log(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="failed; see .*train.log"):
        run_driver(selective_copying, monkeypatch, tmp_path, ["--layers", "1", "--mixers", "mingru", "--",
                                                              "--max_iters=-1"])


def test_recipe_driver_runs_each_cell_once_per_seed_and_reports_against_the_base(tmp_path, monkeypatch):
    calls = []

    def fake_train_run(args, log_path, threads=None, label=""):
        c = parse_config(train.Config, args)  # every override the driver passes is a valid train.py key
        calls.append((c.mixer, c.seed))
        loss = 1.5 + 0.1 * (c.norm == "rmsnorm") + 0.01 * c.seed
        return [{"step": 0, "train": 4.0, "val": 4.0, "acc": None}], {"val": loss, "test": loss + 0.2}

    monkeypatch.setattr(recipe, "train_run", fake_train_run)
    run_driver(recipe, monkeypatch, tmp_path, ["--seeds", "2", "--mixers", "minlstm", "--cells", "base", "rmsnorm",
                                               "--jobs", "1"])
    assert calls == [("minlstm", 0), ("minlstm", 0), ("minlstm", 1), ("minlstm", 1)]  # seeds outermost
    run_driver(recipe, monkeypatch, tmp_path, ["--seeds", "3", "--mixers", "minlstm", "--cells", "base", "rmsnorm",
                                               "--jobs", "1"])
    assert calls[4:] == [("minlstm", 2), ("minlstm", 2)]  # only the new seed ran
    table = (tmp_path / "recipe.md").read_text()
    assert "| base | (base) | 3 | 1.5100 ± 0.0100 |  |" in table
    assert "| rmsnorm | norm=rmsnorm | 3 | 1.6100 ± 0.0100 | +0.1000 |" in table
    (tmp_path / "recipe.md").unlink()
    run_driver(recipe, monkeypatch, tmp_path, ["--report_only"])
    assert (tmp_path / "recipe.md").read_text() == table and len(calls) == 6


def test_search_names_stage_five_from_the_confirmed_finalist_with_the_lowest_mean():
    """Stages 1-3 from seed-0 losses, stage 5 only once stage 4's finalists have three seeds, from the lower mean."""
    screen, means = {}, {}
    named = search.all_cells("minlstm", screen, means, 2)
    assert set(named) == {"adamw", "muon_lr_x0.5", "muon_lr_x1", "muon_lr_x2"}  # stage 1 waits for its runs
    screen.update({"adamw": 1.60, "muon_lr_x0.5": 1.58, "muon_lr_x1": 1.55, "muon_lr_x2": 1.56})
    named = search.all_cells("minlstm", screen, means, 2)
    two = [n for n, (stage, _) in named.items() if stage == "2 one change"]
    assert sorted(two) == sorted(f"muon_lr_x1+{k}" for k in ("wsd", "other_init", "other_tying", "rmsnorm", "relu2"))
    screen.update({n: 1.57 for n in two} | {"muon_lr_x1+rmsnorm": 1.54})  # one better change: no stage 3
    named = search.all_cells("minlstm", screen, means, 2)
    assert not any(stage.startswith(("3", "5")) for stage, _ in named.values())  # stage 4 first
    means.update({"muon_lr_x1+rmsnorm": 1.552, "muon_lr_x1": 1.549})  # the seed-0 winner loses on three seeds
    five = {n: s for n, (stage, s) in search.all_cells("minlstm", screen, means, 2).items() if stage.startswith("5")}
    assert set(five) == {"muon_lr_x1+other_wd", "muon_lr_x1+adamw_lr_x0.3", "muon_lr_x1+adamw_lr_x3"}
    start = named["muon_lr_x1"][1]
    assert five["muon_lr_x1+other_wd"] == {**start, "weight_decay": 0.1}  # minLSTM's base has none
    assert five["muon_lr_x1+adamw_lr_x3"] == {**start, "adamw_lr_scale": 3.0}
    assert search.finalists(search.all_cells("minlstm", screen, means, 2), screen, 2) == []  # stage 5 not screened


def test_search_test_retrains_the_confirmed_cells_and_keeps_the_val_it_chose_by(tmp_path, monkeypatch):
    calls, tested = [], []

    def test_loss(gpt, seed):
        return 1.8 - seed * 0.01 + gpt * (0.03 + 0.005 * seed)

    def fake_train_run(args, log_path, threads=None, label=""):
        c = parse_config(train.Config, args)
        calls.append((c.optimizer, c.learning_rate, c.norm, c.seed))
        gpt = c.mixer == "attn"  # 0.02 + 0.002 * seed above minLSTM on val, 0.03 + 0.005 * seed on test
        val = 1.6 - 0.05 * (c.optimizer == "muon") - 0.01 * (c.norm == "rmsnorm") + 0.001 * c.seed
        val += gpt * (0.02 + 0.002 * c.seed)
        # the retrain moves val a little (another machine); its test split is new
        return [], {"val": val + 0.002 * bool(tested), **({"test": test_loss(gpt, c.seed)} if tested else {})}

    monkeypatch.setattr(search, "train_run", fake_train_run)
    argv = ["--mixers", "gpt", "minlstm", "--jobs", "1", "--finalists", "1"]
    run_driver(search, monkeypatch, tmp_path, argv)
    before = json.loads((tmp_path / "search.json").read_text())
    confirmed = {(m, key) for m, cells in before["runs"].items() for key, runs in cells.items() if len(runs) == 3}
    assert len(confirmed) >= 1 and "seeds 0-2, test" in (tmp_path / "search.md").read_text()
    searched = len(calls)
    tested.append(True)
    run_driver(search, monkeypatch, tmp_path, [*argv, "--test"])
    assert len(calls) == searched + 3 * len(confirmed)  # each confirmed cell's three seeds, nothing else
    after = json.loads((tmp_path / "search.json").read_text())
    for mixer, key in confirmed:
        for seed, run in after["runs"][mixer][key].items():
            old = before["runs"][mixer][key][seed]
            assert run["whole_val"] == old["whole_val"] and run["evals"] == old["evals"]  # the choices' evidence
            assert run["whole_test"] == pytest.approx(test_loss(mixer == "gpt", int(seed)))
            assert run["retest_val"] == pytest.approx(old["whole_val"] + 0.002)
    unconfirmed = [r for cells in after["runs"].values() for key, runs in cells.items() for r in runs.values()
                   if len(runs) < 3]
    assert unconfirmed and not any("whole_test" in r for r in unconfirmed)
    summary = (tmp_path / "search.md").read_text().split("**Each mixer at its best**")[1]
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[3:] for line in summary.splitlines() if line.startswith("| ")}
    # minLSTM - GPT by seed: val (the search's own, not the retrain's) -0.020, -0.022, -0.024; test -0.030, -0.035,
    # -0.040
    assert rows["minLSTM"][1:] == ["-0.0220 ± 0.0020", "1.7900 ± 0.0100", "-0.0350 ± 0.0050 |"]
    assert rows["GPT (attention)"][1] == "" and rows["GPT (attention)"][2] == "1.8250 ± 0.0050"
    run_driver(search, monkeypatch, tmp_path, [*argv, "--test"])
    assert len(calls) == searched + 3 * len(confirmed)  # all tested already


def test_long_search_chooses_by_val_and_only_reports_test(tmp_path, monkeypatch):
    calls = []

    def fake_train_run(args, log_path, threads=None, label=""):
        c = parse_config(train.Config, args)  # every override is a valid train.py key, at 512 tokens
        assert c.block_size == 512 and c.batch_size == 4
        calls.append((c.mixer, c.learning_rate, c.seq_warmup_iters, c.tie_embeddings, c.seed))
        seed = long_search.SEEDS.index(c.seed)
        val = 1.50 - 0.01 * (c.learning_rate > 4e-3) - 0.02 * (c.seq_warmup_iters > 0) + 0.001 * seed
        return [{"step": 0, "train": 4.0, "val": 4.0, "acc": None}], {"val": val, "test": 3.0 - val}

    monkeypatch.setattr(long_search, "train_run", fake_train_run)
    run_driver(long_search, monkeypatch, tmp_path, ["--mixers", "minlstm", "--jobs", "1", "--finalists", "1"])
    # stage 1: 1.5e-3, 3e-3 and 6e-3, widened to 1.2e-2 since 6e-3 (the best val; test would have chosen 1.5e-3)
    # sits at the edge; 1.2e-2 is no better, so stage 2 goes on from 6e-3
    assert [c[1] for c in calls[:4]] == [1.5e-3, 3e-3, 6e-3, 1.2e-2]
    stage2 = calls[4:6]
    assert {(c[1], c[2], c[3]) for c in stage2} == {(6e-3, 1000, False), (6e-3, 0, True)}
    # only the warmup beat stage 2's start: no stage 3; the finalist (lr 6e-3 + warmup) gets seeds 1 and 2
    assert calls[6:] == [("minlstm", 6e-3, 1000, False, 1), ("minlstm", 6e-3, 1000, False, 2)]
    name, setting = long_search.best(json.loads((tmp_path / "long_search.json").read_text()), "minlstm", 1)
    assert name == "lr_x2+seq_warmup" and setting["seq_warmup_iters"] == 1000
    table = (tmp_path / "long_search.md").read_text()
    assert "| minLSTM | lr_x2+seq_warmup |" in table and "1.4710 ± 0.0010" in table and "1.5290 ± 0.0010" in table
    # the winner's train.py command, as the table gives it to a user, is the search's run at its screening seed
    [command] = [line.split()[2:] for line in table.splitlines() if line.startswith("python train.py")]
    assert "--learning_rate=0.006" in command and "--seq_warmup_iters=1000" in command
    assert long_search.parsed(command) == long_search.parsed([*long_search.train_args("minlstm", setting),
                                                              f"--seed={long_search.SCREEN}"])
    run_driver(long_search, monkeypatch, tmp_path, ["--mixers", "minlstm", "--jobs", "1", "--finalists", "1"])
    assert len(calls) == 8  # everything was in the JSON already
    # with two finalists the second has seed 1337 alone: the mixer is not at its best until it has all three
    assert long_search.best(json.loads((tmp_path / "long_search.json").read_text()), "minlstm", 2) is None


def test_long_search_pairs_each_mixers_best_with_the_gpts_seed_by_seed(tmp_path, monkeypatch):
    offset, by_seed = {"gpt": 1.46, "minlstm": 1.45}, {"gpt": (0, 0.01, 0.02), "minlstm": (0, 0.004, 0.008)}

    def fake_train_run(args, log_path, threads=None, label=""):
        c = parse_config(train.Config, args)
        mixer = {"attn": "gpt"}.get(c.mixer, c.mixer)
        start = long_search.base(mixer)  # the recipe's own rate wins; both stage-2 changes lose
        val = (offset[mixer] + 0.01 * abs(math.log2(c.learning_rate / start["learning_rate"]))
               + 0.005 * (c.seq_warmup_iters > 0) + 0.005 * (c.tie_embeddings != start["tie_embeddings"])
               + by_seed[mixer][long_search.SEEDS.index(c.seed)])
        return [], {"val": val, "test": val + {"gpt": 0.16, "minlstm": 0.17}[mixer]}

    monkeypatch.setattr(long_search, "train_run", fake_train_run)
    run_driver(long_search, monkeypatch, tmp_path, ["--mixers", "gpt", "minlstm", "--jobs", "1", "--finalists", "1"])
    summary = (tmp_path / "long_search.md").read_text().split("**Each mixer at its best")[1]
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in summary.splitlines() if line.startswith("| ")}
    # minLSTM - GPT by seed (1337, 1, 2): val -0.010, -0.016, -0.022; test 0.01 higher each
    assert rows["minLSTM"][:2] == ["lr_x1", "(base)"]
    assert rows["minLSTM"][2:] == ["1.4540 ± 0.0040", "-0.0160 ± 0.0060", "1.6240 ± 0.0040", "-0.0060 ± 0.0060 |"]
    assert rows["GPT (attention)"][3] == "" and rows["GPT (attention)"][5] == " |"


def test_long_search_widens_the_learning_rate_while_the_best_sits_at_an_edge():
    cells = long_search.stage_cells("gpt", {"lr_x0.5": 1.46, "lr_x1": 1.47, "lr_x2": 1.48})
    assert set(cells) == {"lr_x0.25", "lr_x0.5", "lr_x1", "lr_x2"}  # waits for lr_x0.25's run
    assert cells["lr_x0.25"][1]["learning_rate"] == pytest.approx(long_search.base("gpt")["learning_rate"] / 4)
    cells = long_search.stage_cells("gpt", {"lr_x0.25": 1.465, "lr_x0.5": 1.46, "lr_x1": 1.47, "lr_x2": 1.48})
    assert "lr_x0.125" not in cells and "lr_x0.5+seq_warmup" in cells  # inside now: stage 2 from lr_x0.5


def test_long_search_reads_long_contexts_run_where_it_is_the_same_run(tmp_path, monkeypatch):
    # long_context's minGRU at 512 and seed 1337 is the search's lr_x1 cell at its screening seed
    log = tmp_path / "long_context" / "mingru" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text("step 2000: train loss 1.3000, val loss 1.4800\nwhole val split: loss 1.4824 over 9 tokens\n"
                   "whole test split: loss 1.6500 over 9 tokens\n")
    calls = []

    def fake_train_run(args, log_path, threads=None, label=""):
        calls.append(parse_config(train.Config, args).learning_rate)
        return [], {"val": 1.49, "test": 1.66}

    monkeypatch.setattr(long_search, "train_run", fake_train_run)
    run_driver(long_search, monkeypatch, tmp_path, ["--mixers", "mingru", "--jobs", "1", "--finalists", "0"])
    data = json.loads((tmp_path / "long_search.json").read_text())
    lr = long_search.base("mingru")["learning_rate"]
    assert calls == [lr / 2, lr * 2, lr, lr]  # x1 was read, not trained; then stage 2's two cells from it
    assert long_search.runs(data, "mingru", long_search.base("mingru"), "test") == {1337: 1.65}
