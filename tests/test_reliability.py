"""Bad input, faults and untrusted files: clear errors, nothing lost, nothing executed."""
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import train
from common import Batches, CheckpointError, DataError, load_checkpoint, load_meta
from configurator import ConfigError, parse_config
from model import GPT, MIXERS, GPTConfig, Mamba, MinGRU, MinLSTM
from sample import SampleConfig, check

TINY = ["--device=cpu", "--dtype=float32", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16",
        "--batch_size=4", "--eval_iters=1", "--log_interval=1"]


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    path = tmp_path / "ckpt.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit(), "model_args": {}, "iter_num": 0}, f)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(str(path))
    assert not os.path.exists("pwned") and not os.path.exists(tmp_path / "pwned")


def test_killed_mid_save_the_checkpoint_on_disk_always_loads(tmp_path):
    # saving every iteration a model big enough that a save takes a while; SIGKILL at random moments
    args = [sys.executable, "train.py", "--device=cpu", "--dtype=float32", "--n_layer=2", "--n_embd=256",
            "--n_head=4", "--block_size=16", "--batch_size=2", "--eval_iters=1", "--eval_interval=1",
            "--always_save_checkpoint=True", "--max_iters=100000", f"--out_dir={tmp_path}", "--mixer=mingru"]
    path = os.path.join(tmp_path, "ckpt.pt")
    rng, kills, last_iter = random.Random(0), 0, -1
    while kills < 8:
        proc = subprocess.Popen(args + (["--init_from=resume"] if os.path.exists(path) else []), cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            if line.startswith("saved checkpoint"):
                break  # training and saving are under way
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        ckpt = load_checkpoint(path)  # never half-written: the rename is atomic
        assert ckpt["iter_num"] >= last_iter
        # a kill mid-save may leave its temp file; the next run deletes it before saving, so they never pile up
        assert len([f for f in os.listdir(tmp_path) if f.endswith(".tmp")]) <= 1
        last_iter = ckpt["iter_num"]
    assert last_iter > 1


@pytest.mark.parametrize("mixer", MIXERS)
def test_bf16_autocast_training_tracks_float32_for_every_mixer(tmp_path, char_dataset, mixer, capsys):
    whole = {}
    for dtype in ("float32", "bfloat16"):
        train.main([*TINY, f"--out_dir={tmp_path / dtype}", f"--mixer={mixer}", f"--dtype={dtype}",
                    "--max_iters=30", "--eval_interval=30", "--conv=2", "--learning_rate=3e-3", "--warmup_iters=2"])
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("whole val split"))
        whole[dtype] = float(line.split("loss ")[1].split()[0])
        assert load_checkpoint(os.path.join(tmp_path / dtype, "ckpt.pt"))["iter_num"] == 30
    assert whole["float32"] < 3.5  # it learned something in 30 steps (ln 59 = 4.08)
    assert whole["bfloat16"] == pytest.approx(whole["float32"], abs=0.05)  # and bf16 learned the same


@pytest.mark.parametrize("layer_cls", [MinGRU, MinLSTM, Mamba])
def test_extreme_inputs_stay_finite_at_16k(layer_cls):
    torch.manual_seed(0)
    layer = layer_cls(GPTConfig(n_embd=8, n_head=1, mixer="mingru", expansion=1.0, conv=4))
    T = 16384
    x = torch.randn(1, T, 8) * 100  # embeddings scaled 100x
    first = layer.in_proj if layer_cls is Mamba else layer.c_fc
    with torch.no_grad():
        first.weight.mul_(30 / first.weight.abs().max())  # gate logits of +-30 and beyond
    x.requires_grad_()
    y, h = layer(x)[:2]
    y.square().mean().backward()
    assert torch.isfinite(y).all() and torch.isfinite(h).all() and torch.isfinite(x.grad).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = layer(x)[:2]
    assert h.dtype == torch.float32 and torch.isfinite(y).all()  # the scan stayed in float32


@pytest.mark.parametrize("args,message", [
    (["--batch_size=0"], "batch_size must be >= 1"),
    (["--n_layer=-1"], "n_layer must be >= 1"),
    (["--block_size=0"], "block_size must be >= 1"),
    (["--n_embd=30", "--n_head=4", "--mixer=attn"], "divisible by n_head"),
    (["--dtype=fp8"], "dtype must be one of"),
    (["--init_from=gpt2"], "init_from must be one of"),
    (["--dataset=selective_copying", "--block_size=16"], "block_size >= copy_seq_len + copy_n_data"),
])
def test_config_errors_name_the_key_and_choices(args, message, capsys, char_dataset):
    with pytest.raises(SystemExit) as e:
        train.main([*TINY, "--max_iters=1", *args])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_truncated_or_short_data_is_a_clear_error(tmp_path, monkeypatch, char_dataset):
    import common
    data = tmp_path / "tiny"
    data.mkdir()
    (data / "train.bin").write_bytes(b"\x00\x01" * 100)
    (data / "val.bin").write_bytes(b"\x00\x01" * 10)
    monkeypatch.setattr(common, "DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="fewer than block_size"):
        Batches("tiny", 16, 2, "cpu")
    (data / "meta.json").write_text('{"vocab_size": 2, "train_tokens": 100, "val_tokens": 20}')
    with pytest.raises(DataError, match="truncated"):
        Batches("tiny", 4, 2, "cpu")
    assert load_meta("tiny")["vocab_size"] == 2


def test_a_checkpoint_of_another_vocabulary_is_refused(tmp_path, capsys, char_dataset):
    train.main([*TINY, f"--out_dir={tmp_path}", "--max_iters=2", "--eval_interval=2", "--vocab_size=80"])
    with pytest.raises(SystemExit):
        train.main([*TINY, f"--out_dir={tmp_path}", "--max_iters=4", "--init_from=resume"])
    vocab = load_meta(char_dataset)["vocab_size"]
    assert f"vocab_size=80 there, {vocab} here" in capsys.readouterr().err


keys = st.sampled_from(["n_layer", "learning_rate", "mixer", "dropout", "compile", "vocab_size", "n_layers", "x"])
values = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.text(max_size=8), st.lists(st.integers(), max_size=2))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(keys, values), max_size=4))
def test_fuzz_the_configurator(pairs):
    argv = [f"--{k}={v!r}" for k, v in pairs]
    try:
        c = parse_config(train.Config, argv)
    except ConfigError as e:
        assert str(e)  # every rejection carries a message
        return
    for k, v in dict(pairs).items():  # what was accepted is what was asked for last (a repeated flag: the later)
        if k in ("n_layer", "mixer", "compile"):
            assert getattr(c, k) == v


@settings(max_examples=200, deadline=None)
@given(st.integers(-3, 3), st.floats(-2, 3), st.one_of(st.none(), st.integers(-2, 500)),
       st.one_of(st.none(), st.floats(-1, 2)), st.one_of(st.none(), st.sampled_from(["full", "tova", "x", ""])),
       st.one_of(st.none(), st.integers(-2, 9)), st.sampled_from(list(MIXERS)))
def test_fuzz_sample_arguments(num_samples, temperature, top_k, top_p, cache, cache_size, mixer):
    c = SampleConfig(num_samples=num_samples, temperature=temperature, top_k=top_k, top_p=top_p, cache=cache,
                     cache_size=cache_size)
    model_config = GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=1, n_embd=4, mixer=mixer)
    try:
        options = check(c, model_config)
    except ConfigError as e:
        assert str(e)
        return
    model = GPT(model_config)
    tokens = list(model.stream(torch.zeros(1, 2, dtype=torch.long), 3, temperature, top_k, top_p, **options))
    assert len(tokens) == 3
