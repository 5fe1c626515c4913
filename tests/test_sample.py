"""sample.py end to end on tiny checkpoints: streamed text, speed and state size, and clear errors."""
import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

import train
from model import GPT, GPTConfig, state_nbytes


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, char_dataset):
    """A tiny GPT (block_size 32) and a tiny minGRU, trained for a few iterations."""
    out = {}
    for mixer in ("attn", "mingru"):
        out[mixer] = str(tmp_path_factory.mktemp(mixer))
        train.main(["--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
                    "--eval_iters=1", "--max_iters=4", "--eval_interval=4", f"--mixer={mixer}", "--conv=3",
                    f"--out_dir={out[mixer]}"])
    return out


def sample(*args):
    return subprocess.run([sys.executable, "sample.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def state_bytes(stdout):
    return int(re.search(r"(?:KV cache|recurrent state): ([\d,]+) bytes", stdout).group(1).replace(",", ""))


def test_mingru_samples_past_block_size_in_constant_memory(checkpoints):
    short = sample(f"--out_dir={checkpoints['mingru']}", "--start=ROMEO:", "--max_new_tokens=10")
    long = sample(f"--out_dir={checkpoints['mingru']}", "--start=ROMEO:", "--max_new_tokens=300", "--num_samples=2")
    assert short.returncode == 0 and long.returncode == 0, short.stderr + long.stderr
    assert "\nROMEO:" in long.stdout and long.stdout.count("---------------") == 2
    assert "tokens/s" in long.stdout
    assert state_bytes(short.stdout) == state_bytes(long.stdout) > 0


def test_gpt_with_a_bounded_cache(checkpoints):
    res = sample(f"--out_dir={checkpoints['attn']}", "--start=ROMEO:", "--max_new_tokens=20", "--cache=window",
                 "--cache_size=4", "--temperature=0")
    assert res.returncode == 0, res.stderr
    # 1 layer: keys and values (2 heads x 4 entries x 16 dims x 4 bytes each), their positions (2 x 4 x 8 bytes),
    # and the conv's last 2 inputs (2 x 32 x 4 bytes)
    assert state_bytes(res.stdout) == 2 * (2 * 4 * 16 * 4) + 2 * 4 * 8 + 2 * 32 * 4
    full = sample(f"--out_dir={checkpoints['attn']}", "--start=ROMEO:", "--max_new_tokens=20")
    assert state_bytes(full.stdout) > state_bytes(res.stdout)


@pytest.mark.parametrize("mixer,args,message", [
    ("attn", ["--max_new_tokens=100"], "learned positions for block_size=32"),
    ("attn", ["--max_new_tokens=100", "--cache=tova", "--cache_size=8"], "learned positions for block_size=32"),
    ("attn", ["--cache=window", "--cache_size=0"], "cache_size must be >= 1"),
    ("attn", ["--cache=lru", "--cache_size=4"], "unknown cache policy 'lru'"),
    ("attn", ["--cache_size=4"], "needs a bounded policy"),
    ("mingru", ["--cache=window"], "apply to the GPT's KV cache"),
    ("mingru", ["--start=\u00e9t\u00e9"], "outside the vocabulary: ['\u00e9']"),
    ("mingru", ["--start="], "the prompt is empty"),
    ("mingru", ["--top_p=1.5"], "top_p must be in (0, 1]"),
    ("mingru", ["--temperature=-1"], "temperature must be >= 0"),
    ("mingru", ["--num_samples=0"], "must be >= 1"),
    ("mingru", ["--start=FILE:missing.txt"], "cannot read the prompt file"),
    ("mingru", ["--topk=3"], "Did you mean 'top_k'?"),
])
def test_bad_input_is_one_clear_line(checkpoints, mixer, args, message):
    res = sample(f"--out_dir={checkpoints[mixer]}", "--max_new_tokens=5", *args)
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


def test_missing_and_corrupt_checkpoints(tmp_path, checkpoints):
    res = sample(f"--out_dir={tmp_path}")
    assert res.returncode == 2 and "no checkpoint" in res.stderr and "Traceback" not in res.stderr
    assert "make one with: python train.py" in res.stderr
    res = sample("--out_dir=out-shakespeare-char-cpu-mingru-missing")  # no such config: the general command
    assert "--out_dir=out-shakespeare-char-cpu-mingru-missing" in res.stderr
    data = open(os.path.join(checkpoints["mingru"], "ckpt.pt"), "rb").read()
    open(os.path.join(tmp_path, "ckpt.pt"), "wb").write(data[: len(data) // 3])
    res = sample(f"--out_dir={tmp_path}")
    assert res.returncode == 2 and "not a readable checkpoint" in res.stderr and "Traceback" not in res.stderr


def test_sample_reads_last_pt_when_it_is_the_newest(tmp_path, checkpoints):
    """After an early Ctrl-C, train.py's only checkpoint may be last.pt: sample.py reads it and says so."""
    import shutil
    shutil.copyfile(os.path.join(checkpoints["mingru"], "ckpt.pt"), tmp_path / "last.pt")
    res = sample(f"--out_dir={tmp_path}", "--max_new_tokens=5")
    assert res.returncode == 0 and "reading" in res.stderr and "last.pt" in res.stderr


def test_the_gpts_block_size_cap_is_said(checkpoints):
    res = sample(f"--out_dir={checkpoints['attn']}")
    assert res.returncode == 0 and "note: the GPT stops at block_size=" in res.stderr


def test_greedy_and_huge_top_k_work(checkpoints):
    a = sample(f"--out_dir={checkpoints['mingru']}", "--temperature=0", "--max_new_tokens=30", "--seed=1")
    b = sample(f"--out_dir={checkpoints['mingru']}", "--temperature=0", "--max_new_tokens=30", "--seed=2")
    assert a.returncode == 0 and a.stdout.split("---")[0] == b.stdout.split("---")[0]  # greedy ignores the seed
    c = sample(f"--out_dir={checkpoints['mingru']}", "--top_k=100000", "--top_p=0.9", "--max_new_tokens=30")
    assert c.returncode == 0, c.stderr


def test_mingru_state_does_not_grow_with_generated_tokens():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=10, n_layer=2, n_head=2, n_embd=16, mixer="mingru", conv=4)).eval()
    sizes = [state_nbytes(state) for _, state in model.stream(torch.zeros(1, 3, dtype=torch.long), 100)]
    assert len(sizes) == 100 and len(set(sizes)) == 1
