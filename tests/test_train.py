"""train.py end to end: configs, checkpoints, exact resume, faults, DDP, wandb offline. Tiny models, few steps."""
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT

import monitor
import train
from common import CheckpointError, load_checkpoint, load_meta, save_checkpoint

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16",
        "--batch_size=4", "--eval_iters=2", "--log_interval=1", "--warmup_iters=2", "--learning_rate=3e-3"]


def run_train(tmp_path, *args, mixer="mingru"):
    return train.main([*TINY, f"--out_dir={tmp_path}", f"--mixer={mixer}", *args])


def cli(*args, env=None, **kw):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, **kw)


@pytest.mark.parametrize("mixer", ["attn", "mingru", "minlstm", "mamba"])
def test_short_run_lowers_the_val_loss(tmp_path, capsys, char_dataset, mixer):
    run_train(tmp_path, "--max_iters=60", "--eval_interval=60", "--eval_iters=10", mixer=mixer)
    val = [float(line.split("val loss ")[1]) for line in capsys.readouterr().out.splitlines()
           if line.startswith("step ")]
    assert len(val) == 2 and val[-1] < val[0] - 0.5
    ckpt = load_checkpoint(os.path.join(tmp_path, "ckpt.pt"))
    vocab = load_meta(char_dataset)["vocab_size"]
    assert ckpt["iter_num"] == 60 and ckpt["model_args"]["mixer"] == mixer and ckpt["model_args"]["vocab_size"] == vocab


def test_compile_auto_leaves_a_cpu_run_eager(tmp_path, char_dataset, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(model) or model)
    run_train(tmp_path / "auto", "--max_iters=1", "--eval_interval=1")
    assert compiled == []
    run_train(tmp_path / "on", "--max_iters=1", "--eval_interval=1", "--compile=True")
    assert len(compiled) == 1


@pytest.mark.parametrize("extra", [[], ["--block_size=32", "--seq_warmup_iters=8", "--seq_warmup_start=8"],
                                   ["--optimizer=muon", "--schedule=wsd", "--weight_decay=0.1",
                                    "--adamw_lr_scale=0.5"]],
                         ids=["plain", "seq_warmup", "muon_wsd"])
def test_resume_continues_exactly(tmp_path, char_dataset, extra):
    common = ["--eval_interval=5", "--lr_decay_iters=10", "--dropout=0.1", "--always_save_checkpoint=True", *extra]
    run_train(tmp_path / "a", "--max_iters=10", *common)
    run_train(tmp_path / "b", "--max_iters=5", *common)
    run_train(tmp_path / "b", "--max_iters=10", "--init_from=resume", *common)
    a, b = (load_checkpoint(os.path.join(tmp_path, d, "ckpt.pt")) for d in "ab")
    assert a["iter_num"] == b["iter_num"] == 10
    assert a["best_val_loss"] == b["best_val_loss"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_sequence_length_warmup_grows_the_training_windows(tmp_path, char_dataset, monkeypatch):
    c = train.Config(block_size=512, batch_size=4, seq_warmup_iters=500, seq_warmup_start=64)
    assert [train.train_shape(i, c) for i in (0, 10, 250, 499, 500, 2000)] == [
        (32, 64), (28, 72), (7, 288), (4, 504), (4, 512), (4, 512)]  # as many windows as fit in 4 * 512 tokens
    assert train.train_shape(0, train.Config(block_size=512, batch_size=4)) == (4, 512)  # off by default
    shapes = []
    get = train.Batches.get

    def record(self, split, gen, length=None, n=None):
        x, y = get(self, split, gen, length, n)
        shapes.append((split, tuple(x.shape)))
        return x, y
    monkeypatch.setattr(train.Batches, "get", record)
    run_train(tmp_path, "--max_iters=6", "--eval_interval=6", "--eval_iters=1", "--block_size=32",
              "--seq_warmup_iters=4", "--seq_warmup_start=8")
    # lengths 8 + 24 * it // 4 rounded down to a multiple of 8, 4 * 32 tokens each; evaluation at block_size
    assert [s for split, s in shapes if split == "train" and s != (4, 32)][:4] == [(16, 8), (16, 8), (8, 16), (5, 24)]
    assert {s for split, s in shapes if split == "val"} == {(4, 32)}


@pytest.mark.parametrize("change,message", [("--n_embd=64", "different model config"),
                                            ("--optimizer=muon", "trained with another optimizer")],
                         ids=["model_config", "optimizer"])
def test_resume_with_another_setting_is_refused(tmp_path, char_dataset, capsys, change, message):
    run_train(tmp_path, "--max_iters=2", "--eval_interval=2")
    with pytest.raises(SystemExit) as e:
        run_train(tmp_path, "--max_iters=4", "--init_from=resume", change)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_wsd_schedule_warms_up_holds_then_cools_down_linearly():
    c = train.Config(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=100, schedule="wsd",
                     cooldown_frac=0.2)
    lrs = [train.get_lr(it, c) for it in range(120)]
    assert lrs[:10] == [(it + 1) / 11 for it in range(10)]
    assert lrs[10:81] == [1.0] * 71  # stable until the last 20 of the 100 iterations
    assert math.isclose(lrs[90], 0.55) and all(math.isclose(lr, 0.1) for lr in lrs[100:])  # halfway, then min_lr
    cosine = train.Config(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=100)
    assert math.isclose(train.get_lr(55, cosine), 0.55)  # halfway through the cosine decay, for comparison


def test_resume_from_a_checkpoint_older_than_a_model_key(tmp_path, char_dataset):
    # a checkpoint written before tie_embeddings existed lacks it; it was a tied model, the key's default
    run_train(tmp_path, "--max_iters=2", "--eval_interval=2")
    path = os.path.join(tmp_path, "ckpt.pt")
    ckpt = load_checkpoint(path)
    del ckpt["model_args"]["tie_embeddings"]
    save_checkpoint(path, ckpt)
    run_train(tmp_path, "--max_iters=4", "--eval_interval=2", "--init_from=resume")
    assert load_checkpoint(path)["iter_num"] == 4
    with pytest.raises(SystemExit):  # and an untied run does not resume from it
        run_train(tmp_path, "--max_iters=6", "--init_from=resume", "--tie_embeddings=False")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, char_dataset, capsys):
    run_train(tmp_path, "--max_iters=4", "--eval_interval=4")
    path = os.path.join(tmp_path, "ckpt.pt")
    before = open(path, "rb").read()
    with pytest.raises(SystemExit) as e:
        run_train(tmp_path, "--max_iters=50", "--eval_interval=50", "--init_from=resume", "--learning_rate=1e30",
                  "--grad_clip=0.0", "--decay_lr=False")
    assert e.value.code == 1
    err = capsys.readouterr().err
    at = int(err.split("non-finite at iteration ")[1].split(";")[0])
    assert 4 <= at < 50  # found at a log line (every iteration here), not at the run's end
    assert open(path, "rb").read() == before
    assert load_checkpoint(path)["iter_num"] == 4


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = os.path.join(tmp_path, "ckpt.pt")
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "model_args": {}, "iter_num": 1})

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "model_args": {}, "iter_num": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["iter_num"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temp file left behind


def test_checkpoints_get_the_umask_mode_not_a_private_one(tmp_path):
    path = os.path.join(tmp_path, "ckpt.pt")
    old = os.umask(0o022)
    try:
        save_checkpoint(path, {"model": {}, "model_args": {}, "iter_num": 0})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644  # as torch.save(obj, path) would make it


def test_the_ctrl_c_handler_is_restored_when_training_fails(tmp_path, char_dataset):
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit):
        run_train(tmp_path, "--max_iters=50", "--eval_interval=50", "--learning_rate=1e30", "--grad_clip=0")
    assert signal.getsignal(signal.SIGINT) is before


def test_corrupt_or_foreign_checkpoints_are_clear_errors(tmp_path):
    path = os.path.join(tmp_path, "ckpt.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(path)
    save_checkpoint(path, {"model": {"w": torch.ones(1000)}, "model_args": {}, "iter_num": 1})
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    torch.save({"weights": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(path)


def ctrl_c_at(iteration, *args):
    """Run train.py with args until it logs `iteration`, press Ctrl-C, and return (exit code, output)."""
    proc = subprocess.Popen([sys.executable, "train.py", *TINY, "--max_iters=100000", "--eval_interval=100000", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith(f"iter {iteration}:"):
            break
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    return proc.returncode, out


def test_ctrl_c_saves_a_checkpoint(tmp_path, char_dataset):
    code, out = ctrl_c_at(3, f"--out_dir={tmp_path}")
    assert code == 0, out
    assert "interrupted at iteration" in out
    assert load_checkpoint(os.path.join(tmp_path, "ckpt.pt"))["iter_num"] >= 3


def test_ctrl_c_keeps_the_best_checkpoint_and_resumes_from_the_interrupted_state(tmp_path, char_dataset, capsys):
    keep_best = ["--always_save_checkpoint=False", "--eval_interval=10"]
    run_train(tmp_path, "--max_iters=20", *keep_best)
    best = os.path.join(tmp_path, "ckpt.pt")
    before = load_checkpoint(best)
    code, out = ctrl_c_at(25, f"--out_dir={tmp_path}", "--mixer=mingru", "--init_from=resume",
                          "--always_save_checkpoint=False")
    assert code == 0 and "last.pt" in out, out
    after = load_checkpoint(best)
    assert after["iter_num"] == before["iter_num"]  # the best model is untouched
    assert all(torch.equal(after["model"][k], before["model"][k]) for k in before["model"])
    last = load_checkpoint(os.path.join(tmp_path, "last.pt"))["iter_num"]
    assert last >= 25
    capsys.readouterr()
    run_train(tmp_path, f"--max_iters={last + 2}", "--init_from=resume", *keep_best)
    assert f"last.pt at iteration {last}" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(tmp_path, "last.pt"))  # finished: the interrupted state is stale


def test_adamw_lr_scale_sets_the_muon_runs_adamw_part_apart(tmp_path, char_dataset):
    run_train(tmp_path, "--max_iters=4", "--eval_interval=4", "--lr_decay_iters=8", "--optimizer=muon",
              "--adamw_lr_scale=0.25", "--always_save_checkpoint=True")
    adamw, muon = load_checkpoint(os.path.join(tmp_path, "ckpt.pt"))["optimizer"]
    lr = train.get_lr(4, train.Config(learning_rate=3e-3, warmup_iters=2, lr_decay_iters=8))
    assert muon["param_groups"][0]["lr"] == pytest.approx(lr)
    assert [g["lr"] for g in adamw["param_groups"]] == pytest.approx([0.25 * lr] * len(adamw["param_groups"]))


def test_ddp_on_two_cpu_processes_stays_in_sync_and_resumes_exactly(tmp_path, char_dataset):
    """Uninterrupted 6 iterations against 3, then 3 more after a resume, on 2 processes with dropout: the same
    weights only if every rank draws the same batches and dropout masks after the resume as without it. At the end
    train.py checks that the ranks hold identical weights (it fails when gradients are not synchronised). With
    Muon, so both optimizers' states travel through the checkpoint."""
    def ddp(out_dir, *args):
        res = cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *TINY,
                  f"--out_dir={out_dir}", "--gradient_accumulation_steps=2", "--dropout=0.1", "--eval_interval=3",
                  "--lr_decay_iters=6", "--optimizer=muon", *args)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "world size 2" in res.stdout
    ddp(tmp_path / "a", "--max_iters=6")
    ddp(tmp_path / "b", "--max_iters=3")
    ddp(tmp_path / "b", "--max_iters=6", "--init_from=resume")
    a, b = (load_checkpoint(os.path.join(tmp_path, d, "ckpt.pt")) for d in "ab")
    assert a["iter_num"] == b["iter_num"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


FAIL_ON_ONE_RANK = """
import os, sys
sys.path.insert(0, {root!r})
import train
get, calls = train.Batches.get, []
def failing_get(self, split, generator, *shape):  # rank {rank} fails on its {after}th {split} batch
    if split == {split!r} and os.environ["RANK"] == "{rank}":
        calls.append(1)
        if len(calls) > {after}:
            raise {error}("injected failure on rank {rank}")
    return get(self, split, generator, *shape)
train.Batches.get = failing_get
train.main()
"""


@pytest.mark.parametrize("rank, split, error", [(1, "train", "RuntimeError"), (0, "val", "FloatingPointError")])
def test_ddp_an_error_on_one_rank_ends_every_rank(tmp_path, char_dataset, rank, split, error):
    """rank 1 failing mid-step (rank 0 waits in the gradient all-reduce) and rank 0 failing in its evaluation
    (rank 1 waits at the next iteration's stop flag): the job ends at once, not at a collective's timeout."""
    script = tmp_path / "fail.py"
    script.write_text(FAIL_ON_ONE_RANK.format(root=ROOT, rank=rank, split=split, after=6, error=error))
    t0 = time.time()
    res = cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script), *TINY,
              f"--out_dir={tmp_path}", "--gradient_accumulation_steps=2", "--max_iters=50", "--eval_interval=10")
    assert res.returncode != 0 and f"injected failure on rank {rank}" in res.stdout + res.stderr
    assert time.time() - t0 < 120, "the ranks that did not fail waited for a collective's timeout"


def test_wandb_offline_run_completes(tmp_path, char_dataset):
    res = cli("train.py", *TINY, f"--out_dir={tmp_path}", "--max_iters=3", "--eval_interval=3", "--wandb_log=True",
              env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "step 3:" in res.stdout
    assert any(d.startswith("offline-run") for d in os.listdir(os.path.join(tmp_path, "wandb")))


@pytest.mark.parametrize("args,message", [
    (["--n_layers=4"], "unknown config key 'n_layers'. Did you mean 'n_layer'?"),
    (["--batch_size=1.5"], "'batch_size' expects int, got 1.5"),
    (["--mixer=lstm"], "unknown mixer 'lstm'"),
    (["config/nope.py"], "cannot read config file"),
    (["--dataset=nope"], "unknown dataset 'nope'"),
    (["--seq_warmup_iters=10", "--seq_warmup_start=64"], "seq_warmup_start must be in [1, block_size=16]"),
    (["--dataset=selective_copying", "--seq_warmup_iters=10", "--seq_warmup_start=8"],
     "seq_warmup_iters does not apply to selective copying"),
    (["--optimizer=sgd"], "optimizer must be one of adamw, muon (got 'sgd')"),
    (["--schedule=linear"], "schedule must be one of cosine, wsd"),
    (["--adamw_lr_scale=0.5"], "adamw_lr_scale scales the AdamW part of optimizer=muon"),
    (["--optimizer=muon", "--adamw_lr_scale=0"], "adamw_lr_scale must be > 0"),
    (["--cooldown_frac=0"], "cooldown_frac must be in (0, 1]"),
    (["--pos=rope", "--mixer=mingru"], "pos and qk_norm configure attention"),
])
def test_cli_errors_are_one_clear_line(args, message):
    res = cli("train.py", *TINY, "--max_iters=1", *args)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_progress_is_plain_lines_without_a_terminal(tmp_path, char_dataset):
    start = time.time()
    res = cli("train.py", *TINY, f"--out_dir={tmp_path}", "--max_iters=3", "--eval_interval=3")
    assert res.returncode == 0 and time.time() - start < 120
    lines = res.stdout.splitlines()
    assert "iter 1: loss" in res.stdout and "tok/s" in res.stdout
    assert any(line.startswith("step 3: train loss") and ", val loss " in line for line in lines)
    assert "\r" not in res.stdout


def test_a_long_cpu_run_says_how_long_it_will_take(tmp_path, char_dataset, capsys, monkeypatch):
    args = ["--max_iters=3", "--eval_interval=3", "--dropout=0.1"]
    run_train(tmp_path / "short", *args, mixer="attn")
    assert "will take about" not in capsys.readouterr().out
    monkeypatch.setattr(monitor, "SLOW_RUN_SECONDS", 0.0)
    run_train(tmp_path / "long", *args, mixer="attn")
    out = capsys.readouterr().out
    assert "will take about" in out and "config/shakespeare_char_cpu_gpt.py" in out
    # the timing step changed nothing: the same weights as the run without it
    a, b = (load_checkpoint(os.path.join(tmp_path, d, "ckpt.pt"))["model"] for d in ("long", "short"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_selective_copying_trains_and_reports_answer_accuracy(tmp_path, capsys):
    train.main(["--device=cpu", "--dataset=selective_copying", "--copy_seq_len=16", "--copy_n_data=4",
                "--block_size=20", "--mixer=mingru", "--n_layer=1", "--n_embd=16", "--mlp=False", "--batch_size=8",
                "--eval_iters=2", "--max_iters=3", "--eval_interval=3", f"--out_dir={tmp_path}"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert len(lines) == 2 and all(", val acc " in line for line in lines)
    acc = float(lines[-1].split("val acc ")[1])
    assert 0.0 <= acc <= 1.0


def test_the_slow_run_note_never_recommends_the_config_being_run(tmp_path, char_dataset, capsys, monkeypatch):
    monkeypatch.setattr(monitor, "SLOW_RUN_SECONDS", 0.0)
    train.main(["config/shakespeare_char_cpu_gpt.py", "--max_iters=2", "--eval_interval=2", "--eval_iters=1",
                f"--out_dir={tmp_path}", "--n_layer=1"])
    out = capsys.readouterr().out
    assert "will take about" in out and "median of" in out and "try config/" not in out


def test_a_gpu_config_without_a_gpu_runs_its_cpu_recipe(tmp_path, char_dataset, capsys):
    """The project's card command on a CPU: the baby config names its CPU recipe, which runs instead (overrides
    kept), saying so in its first line; --cpu_recipe=None keeps the config as given."""
    assert not torch.cuda.is_available()
    train.main(["config/shakespeare_char_mingru.py", "--max_iters=2", "--eval_interval=2", "--eval_iters=1",
                f"--out_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert out.startswith("no GPU here: config/shakespeare_char_mingru.py is sized for one")
    assert "config/shakespeare_char_cpu_mingru.py" in out.splitlines()[0]
    ckpt = load_checkpoint(os.path.join(tmp_path, "ckpt.pt"))
    assert ckpt["model_args"]["n_embd"] == 128 and ckpt["model_args"]["block_size"] == 64 and ckpt["iter_num"] == 2
    from configurator import parse_config
    c = parse_config(train.Config, ["config/shakespeare_char_mingru.py", "--cpu_recipe=None"])
    assert c.cpu_recipe is None and c.n_embd == 384


def test_evaluation_runs_without_dropout(tmp_path, char_dataset, capsys):
    """At step 0 the weights do not depend on dropout, so neither may the step-0 evaluation."""
    for dropout in (0.0, 0.3):
        run_train(tmp_path / str(dropout), "--max_iters=1", "--eval_interval=1", f"--dropout={dropout}")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step 0:")]
    assert len(lines) == 2 and lines[0] == lines[1]


def test_accumulated_loss_is_the_mean_over_micro_steps(tmp_path, char_dataset, capsys):
    """With gradient accumulation the logged loss is the mean of the micro-batches' losses: near ln(vocab) at the
    start, as without it (a loss summed over micro-steps would log K times that)."""
    run_train(tmp_path, "--max_iters=1", "--eval_interval=5", "--gradient_accumulation_steps=2", "--log_interval=1")
    loss = float(next(line for line in capsys.readouterr().out.splitlines()
                      if line.startswith("iter 1: loss")).split("loss ")[1].split(",")[0])
    assert abs(loss - math.log(load_meta(char_dataset)["vocab_size"])) < 0.5
