"""An older PyTorch gets one line that says what it lacks: at import below 2.4 (model.check_torch), and where
optimizer='muon' is chosen below 2.9 (model.muon_missing, in train.py's config check and configure_optimizers)."""
import os
import subprocess
import sys

import pytest
import torch

import train
from configurator import ConfigError
from model import GPT, GPTConfig, check_torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MUON_LINE = ("optimizer='muon' needs PyTorch >= 2.9 (torch.optim.Muon); this is 2.5.1: upgrade, or set "
             "optimizer='adamw'")


@pytest.mark.parametrize("version", ["2.4.0", "2.4.1+cpu", "2.9.0+cu128", "2.10.0a0+git1234", "2.13.0", "3.0.0"])
def test_check_torch_accepts_the_floor_and_newer(version):
    check_torch(version)


@pytest.mark.parametrize("version", ["2.3.1", "2.2.0+cu121", "1.13.1", "2.1.0a0+gitabc"])
def test_check_torch_names_the_floor_and_this_version(version):
    with pytest.raises(ImportError) as e:
        check_torch(version)
    assert "PyTorch >= 2.4" in str(e.value) and f"this is {version}: upgrade" in str(e.value)
    assert "\n" not in str(e.value)


def test_train_py_on_an_older_torch_stops_at_start_up_with_one_line():
    # train.py run as a user runs it, with torch reporting 2.3.1: the last line of stderr says what to do
    code = ("import runpy, sys, torch; torch.__version__ = '2.3.1'; sys.argv = ['train.py', '--max_iters=1']; "
            "runpy.run_path('train.py', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "ImportError: minrnn needs PyTorch >= 2.4 (F.rms_norm, the CPU's fused AdamW), and >= 2.9 for "
        "optimizer='muon' (torch.optim.Muon); this is 2.3.1: upgrade (requirements.txt)")


@pytest.fixture
def torch_without_muon(monkeypatch):
    """PyTorch 2.5.1 as train.py and model.py see it: no torch.optim.Muon."""
    monkeypatch.delattr(torch.optim, "Muon", raising=False)
    monkeypatch.setattr(torch, "__version__", "2.5.1")


def test_muon_on_an_older_torch_is_a_config_error_with_one_line(torch_without_muon):
    with pytest.raises(ConfigError) as e:
        train.Config(optimizer="muon")
    assert str(e.value) == MUON_LINE
    train.Config(optimizer="adamw")  # what the line suggests is accepted


def test_a_muon_config_on_an_older_torch_stops_before_training(torch_without_muon, capsys, tmp_path):
    # the card's CPU config sets optimizer = "muon"; main() exits at the config check, before any data or model
    with pytest.raises(SystemExit) as e:
        train.main([os.path.join(ROOT, "config", "shakespeare_char_cpu_gpt.py"), f"--out_dir={tmp_path}"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {MUON_LINE}"
    assert not os.listdir(tmp_path)


def test_configure_optimizers_refuses_muon_on_an_older_torch(torch_without_muon):
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(ValueError) as e:
        model.configure_optimizers("muon", 0.1, 1e-3, (0.9, 0.95), "cpu")
    assert str(e.value) == MUON_LINE
    adamw, = model.configure_optimizers("adamw", 0.1, 1e-3, (0.9, 0.95), "cpu")
    assert isinstance(adamw, torch.optim.AdamW)


def test_muon_is_there_on_this_torch():
    # the suite's own PyTorch is at the floor or newer (requirements.txt): the check above must not fire here
    assert train.Config(optimizer="muon").optimizer == "muon"
