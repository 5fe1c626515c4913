"""The whole-split evaluation: every position of the split scored once, whatever the batching, and the same number
from the end of a training run and from its checkpoint."""
import json
import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import common
import train
from common import Batches, split_loss


class Bigram(nn.Module):
    """A fixed table of next-token logits: its loss at every position can be written out by hand."""

    def __init__(self, vocab):
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0),
                                              dtype=torch.float64))

    def forward(self, x, y):
        logits = self.table[x]
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DATA_DIR", str(tmp_path))
    data = np.random.default_rng(0).integers(0, 7, size=1003).astype(np.uint16)
    os.makedirs(tmp_path / "toy")
    for split in ("train", "val"):
        data.tofile(tmp_path / "toy" / f"{split}.bin")
    (tmp_path / "toy" / "meta.json").write_text(json.dumps({"vocab_size": 7, "train_tokens": 1003,
                                                            "val_tokens": 1003}))
    return data


@pytest.mark.parametrize("block_size", [10, 16, 17, 1002])  # 1003 = 17 * 59: a split of whole windows, less the shift
def test_split_loss_scores_every_position_once(toy_dataset, block_size):
    model = Bigram(7)
    n = (len(toy_dataset) - 1) // block_size * block_size  # whole windows only; their targets stay in the split
    logp = F.log_softmax(model.table, dim=-1)
    data = torch.from_numpy(toy_dataset.astype(np.int64))
    by_hand = -logp[data[:n], data[1:n + 1]].double().mean().item()
    batches = Batches("toy", block_size, 4, "cpu")
    assert batches.n_windows("val") == (len(toy_dataset) - 1) // block_size  # the targets are shifted by one
    for batch_size in (1, 3, 64):
        loss, count = split_loss(model, batches, "val", batch_size=batch_size)
        assert count == n
        assert loss == pytest.approx(by_hand, rel=1e-9)


def test_random_batches_have_next_token_targets(toy_dataset):
    x, y = Batches("toy", 12, 5, "cpu").get("train", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 12) and torch.equal(y[:, :-1], x[:, 1:]) and not torch.equal(x, y)


def test_training_prints_the_whole_split_loss_and_eval_only_reproduces_it(tmp_path, char_dataset, capsys):
    args = ["--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
            "--eval_iters=2", "--max_iters=20", "--eval_interval=20", f"--out_dir={tmp_path}", "--mixer=minlstm"]
    train.main(args)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("whole val split")]
    val_tokens = (os.path.getsize(os.path.join(common.dataset_dir(char_dataset), "val.bin")) // 2 - 1) // 32 * 32
    assert len(lines) == 1 and f"over {val_tokens:,} tokens" in lines[0] and "iteration 20" in lines[0]
    trained = float(lines[0].split("loss ")[1].split()[0])
    assert 1.0 < trained < math.log(common.load_meta(char_dataset)["vocab_size"])
    train.main([*args, "--init_from=resume", "--eval_only=True"])
    again = [line for line in capsys.readouterr().out.splitlines() if line.startswith("whole val split")]
    assert again == lines  # deterministic, and computed on the checkpoint's model


def test_a_run_reports_the_test_split_beside_val_and_eval_only_reproduces_both(tmp_path, char_dataset, capsys):
    args = ["--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4",
            "--eval_iters=2", "--max_iters=20", "--eval_interval=10", f"--out_dir={tmp_path}", "--mixer=mingru"]
    train.main(args)
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("whole ")]
    test_tokens = (os.path.getsize(os.path.join(common.dataset_dir(char_dataset), "test.bin")) // 2 - 1) // 32 * 32
    assert [line.split()[1] for line in lines] == ["val", "test"]
    assert f"over {test_tokens:,} tokens" in lines[1] and "iteration 20" in lines[1]
    val, test = (float(line.split("loss ")[1].split()[0]) for line in lines)
    assert val != test and 1.0 < test < 2 * math.log(common.load_meta(char_dataset)["vocab_size"])
    # nothing is chosen by test: the progress lines (what checkpoints are kept by) and the best val are val's only
    assert not any("test" in line for line in out if line.startswith("step "))
    train.main([*args, "--init_from=resume", "--eval_only=True"])
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("whole ")] == lines


def test_a_truncated_test_split_is_a_clear_error(toy_dataset, tmp_path):
    toy_dataset[:500].tofile(tmp_path / "toy" / "test.bin")
    meta = json.loads((tmp_path / "toy" / "meta.json").read_text())
    (tmp_path / "toy" / "meta.json").write_text(json.dumps({**meta, "test_tokens": 600}))
    with pytest.raises(common.DataError, match="test.bin is 1000 bytes, but should hold 600 uint16 tokens"):
        Batches("toy", 8, 4, "cpu")
    (tmp_path / "toy" / "meta.json").write_text(json.dumps({**meta, "test_tokens": 500}))
    assert Batches("toy", 8, 4, "cpu").eval_splits == ("val", "test")
