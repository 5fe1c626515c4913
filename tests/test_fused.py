"""The fused minGRU and minLSTM cells (fused.py) against the same cells composed from plain ops, in float64."""
import pytest
import torch

import fused
from model import GPT, GPTConfig

CELLS = [(fused.mingru, fused.mingru_reference, 2), (fused.minlstm, fused.minlstm_reference, 3)]


@pytest.mark.parametrize("fn,reference,parts", CELLS, ids=["mingru", "minlstm"])
@pytest.mark.parametrize("T", [1, 7, 64, 100])  # 7 and 100 are not multiples of the scan's chunk: padding
@pytest.mark.parametrize("with_h0", [False, True])
def test_fused_matches_reference(fn, reference, parts, T, with_h0):
    gen = torch.Generator().manual_seed(T)
    kh = (3 * torch.randn(3, T, parts * 5, generator=gen, dtype=torch.float64)).requires_grad_()
    h0 = torch.rand(3, 5, generator=gen, dtype=torch.float64).requires_grad_() if with_h0 else None
    weights = torch.randn(3, T, 5, generator=gen, dtype=torch.float64)
    inputs = [kh] + ([h0] if with_h0 else [])
    out, ref = fn(kh, h0), reference(kh, h0)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((out * weights).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * weights).sum(), inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn,parts", [(fused.mingru, 2), (fused.minlstm, 3)], ids=["mingru", "minlstm"])
def test_fused_gradcheck(fn, parts):
    kh = torch.randn(2, 5, parts * 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (kh, h0))


@pytest.mark.parametrize("fn,parts", [(fused.mingru, 2), (fused.minlstm, 3)], ids=["mingru", "minlstm"])
def test_fused_extreme_inputs_stay_finite(fn, parts):
    # gates saturated both ways (minLSTM's f and i both far below zero: i / (f + i) must not be 0 / 0)
    kh = torch.tensor([-200.0, -150.0, 0.0, 50.0, 150.0, 300.0]).repeat(1, 64, parts).requires_grad_()
    h = fn(kh)
    h.sum().backward()
    assert torch.isfinite(h).all() and torch.isfinite(kh.grad).all()


def test_fused_runs_in_float32_under_autocast():
    kh = torch.randn(2, 8, 6, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = fused.mingru(kh)
    assert h.dtype == torch.float32
    torch.testing.assert_close(h, fused.mingru_reference(kh.float(), backend="chunked"))


def test_fused_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"pre-activations \(B, T, 3\*H\)"):
        fused.minlstm(torch.randn(2, 8, 7))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\) = \(2, 3\)"):
        fused.mingru(torch.randn(2, 8, 6), torch.randn(2, 4))


@pytest.mark.parametrize("mixer,name", [("mingru", "_MinGRU"), ("minlstm", "_MinLSTM")])
def test_cpu_model_trains_through_the_fused_cell(mixer, name):
    model = GPT(GPTConfig(block_size=16, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer=mixer, conv=4))
    idx = torch.randint(0, 11, (2, 16))
    _, loss = model(idx, idx)
    node, seen = loss.grad_fn, set()
    stack = [node]
    while stack:  # the autograd graph holds the fused Function's backward
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack += [n for n, _ in node.next_functions]
    assert any(type(n).__name__ == f"{name}Backward" for n in seen)
