"""The benchmarks' measuring pieces (not their timings): what they compute must be what they say."""
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from benchmarks.length import buckets, carried_losses, sliding_losses
from model import GPT, GPTConfig


def tiny(mixer, block=8, **kw):
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=block, vocab_size=11, n_layer=2, n_head=2, n_embd=16, mixer=mixer,
                         conv=3, **kw)).double().eval()


def per_position(model, x, y):
    logits, _ = model(x, y)
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none")


def test_carried_losses_are_one_pass_over_the_whole_stretch():
    """Chunked prefill with the state carried gives every position the loss of one forward pass over it all, a few
    stretches at a time."""
    for mixer, kw in (("mingru", {}), ("mamba", {}), ("attn", {"pos": "rope"})):  # RoPE: 41 tokens past block 8
        model = tiny(mixer, **kw)
        x = torch.randint(0, 11, (3, 41), generator=torch.Generator().manual_seed(1))
        y = torch.roll(x, -1, dims=1)
        torch.testing.assert_close(carried_losses(model, x, y, chunk=7, batch=2), per_position(model, x, y),
                                   rtol=1e-10, atol=1e-10)


def test_sliding_losses_score_each_position_once_with_enough_context():
    model, block, stride = tiny("attn"), 8, 3
    x = torch.randint(0, 11, (2, 23), generator=torch.Generator().manual_seed(2))
    y = torch.roll(x, -1, dims=1)
    got = sliding_losses(model, x, y, stride)
    windows = {s: per_position(model, x[:, s:s + block], y[:, s:s + block]) for s in range(0, 23 - block + 1)}
    for p in range(23):
        # the loss at p is the model's at p in some window that gives p at least block - stride tokens before it
        # (or all there are, in the first window)
        ok = [s for s, w in windows.items() if s <= p < s + block and (s == 0 or p - s >= block - stride)
              and torch.allclose(w[:, p - s], got[:, p], rtol=1e-6, atol=1e-6)]
        assert ok, p


def test_buckets_double_from_the_training_length():
    out = buckets(torch.arange(20.0), 4)
    assert [(b["from"], b["to"]) for b in out] == [(0, 2), (2, 4), (4, 8), (8, 16), (16, 20)]
    assert [b["loss"] for b in out] == [0.5, 2.5, 5.5, 11.5, 17.5]


def test_state_loss_steps_one_token_at_a_time_through_the_cache():
    """bench.py state_loss's measuring function: equal to a hand loop of model.step with the same cache, and a
    window smaller than the context scores differently from the full cache (one prefill would score them alike)."""
    from benchmarks.state_loss import stepped_loss
    model = tiny("attn", block=16)
    x = torch.randint(0, 11, (3, 16), generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 11, (3, 16), generator=torch.Generator().manual_seed(3))
    state, total = model.init_state(3, policy="window", size=4), 0.0
    for t in range(16):
        logits, state = model.step(x[:, t], state)
        total += F.cross_entropy(logits, y[:, t], reduction="sum").item()
    window, nbytes = stepped_loss(model, x, y, policy="window", size=4)
    assert abs(window - total / 48) < 1e-12
    full, full_bytes = stepped_loss(model, x, y)
    assert abs(window - full) > 1e-4 and nbytes < full_bytes
    logits, _ = model(x, y)  # the full cache stepped is the parallel forward
    assert abs(full - F.cross_entropy(logits.transpose(1, 2), y).item()) < 1e-10


def test_state_loss_past_block_size_with_rope():
    """Past block_size (bench.py state_loss --tokens), the RoPE GPT's full cache stepped is its parallel forward
    over the whole longer window, and a window cache of block_size tokens scores differently."""
    from benchmarks.state_loss import stepped_loss
    model = tiny("attn", block=8, pos="rope")
    x = torch.randint(0, 11, (2, 32), generator=torch.Generator().manual_seed(4))
    y = torch.randint(0, 11, (2, 32), generator=torch.Generator().manual_seed(5))
    full, _ = stepped_loss(model, x, y)
    logits, _ = model(x, y)
    assert abs(full - F.cross_entropy(logits.transpose(1, 2), y).item()) < 1e-10
    window, _ = stepped_loss(model, x, y, policy="window", size=8)
    assert abs(window - full) > 1e-4


def test_state_loss_past_block_size_needs_rope(tmp_path, char_dataset):
    """A GPT with a learned position table cannot be measured past block_size: a clear error, before any stepping."""
    from test_train import run_train

    from benchmarks.state_loss import bench_state_loss
    run_train(tmp_path, "--max_iters=1", "--eval_interval=1", "--always_save_checkpoint=True", mixer="attn")
    with pytest.raises(SystemExit, match="pos=rope"):
        bench_state_loss(SimpleNamespace(gpt=str(tmp_path), rnn=[], quick=True, name="unused", tokens=4096))
