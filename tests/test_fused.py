"""The fused minGRU and minLSTM cells and the causal conv (fused.py, both its C kernels in kernels.c and its
PyTorch-op Functions) against the same computations composed from plain ops, in float64."""
import warnings

import pytest
import torch

import fused
import kernels
from model import GPT, CausalConv, GPTConfig

CELLS = [(fused.mingru, fused.mingru_reference, 2), (fused.minlstm, fused.minlstm_reference, 3)]
C_BUILT = kernels.library(torch.float64) is not None and kernels.library(torch.float32) is not None
NO_C = "kernels.c could not be built here (no working C compiler)"
needs_c = pytest.mark.skipif(not C_BUILT, reason=NO_C)


@pytest.fixture(params=["c", "ops"])
def impl(request, monkeypatch):
    """Each test once through kernels.c's kernels and once through the PyTorch-op Functions (C_KERNELS=0's path)."""
    if request.param == "c" and not C_BUILT:
        pytest.skip(NO_C)
    monkeypatch.setattr(kernels, "USE_C", request.param == "c")
    return request.param


@pytest.mark.parametrize("fn,reference,parts", CELLS, ids=["mingru", "minlstm"])
@pytest.mark.parametrize("T", [1, 7, 64, 100])  # 7 and 100 are not multiples of the scan's chunk: padding
@pytest.mark.parametrize("with_h0", [False, True])
def test_fused_matches_reference(fn, reference, parts, T, with_h0, impl):
    gen = torch.Generator().manual_seed(T)
    kh = (3 * torch.randn(3, T, parts * 5, generator=gen, dtype=torch.float64)).requires_grad_()
    h0 = torch.rand(3, 5, generator=gen, dtype=torch.float64).requires_grad_() if with_h0 else None
    weights = torch.randn(3, T, 5, generator=gen, dtype=torch.float64)
    inputs = [kh] + ([h0] if with_h0 else [])
    out, ref = fn(kh, h0), reference(kh, h0)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    expected = "_CellC" if impl == "c" else {"mingru": "_MinGRU", "minlstm": "_MinLSTM"}[fn.__name__]
    assert type(out.grad_fn).__name__ == expected + "Backward"
    grads = torch.autograd.grad((out * weights).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * weights).sum(), inputs)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fn,parts", [(fused.mingru, 2), (fused.minlstm, 3)], ids=["mingru", "minlstm"])
def test_fused_gradcheck(fn, parts, impl):
    kh = torch.randn(2, 5, parts * 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (kh, h0))


@pytest.mark.parametrize("fn,parts", [(fused.mingru, 2), (fused.minlstm, 3)], ids=["mingru", "minlstm"])
def test_fused_extreme_inputs_stay_finite(fn, parts, impl):
    # gates saturated both ways (minLSTM's f and i both far below zero: i / (f + i) must not be 0 / 0)
    kh = torch.tensor([-200.0, -150.0, 0.0, 50.0, 150.0, 300.0]).repeat(1, 64, parts).requires_grad_()
    h = fn(kh)
    h.sum().backward()
    assert torch.isfinite(h).all() and torch.isfinite(kh.grad).all()


def test_fused_runs_in_float32_under_autocast(impl):
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


def _grad_fns(loss):
    """The types of every node in loss's autograd graph."""
    stack, seen = [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack += [n for n, _ in node.next_functions]
    return {type(n).__name__ for n in seen}


@pytest.mark.parametrize("mixer,name", [("mingru", "_MinGRU"), ("minlstm", "_MinLSTM")])
def test_cpu_model_trains_through_the_fused_cell(mixer, name, impl):
    model = GPT(GPTConfig(block_size=16, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer=mixer, conv=4))
    idx = torch.randint(0, 11, (2, 16))
    _, loss = model(idx, idx)
    names = _grad_fns(loss)
    if impl == "c":
        assert {"_CellCBackward", "_ConvCBackward"} <= names
    else:
        assert f"{name}Backward" in names and "AddcmulBackward0" in names and "_CellCBackward" not in names


@needs_c
@pytest.mark.parametrize("fn,reference,parts", CELLS, ids=["mingru", "minlstm"])
def test_c_kernels_in_float32_match_the_float64_reference(fn, reference, parts):
    # float32: exp is kernels.c's own (a Taylor series, within a few ulp); H = 37 leaves a remainder after the vector
    # loop; the gradient arrives expanded (h.sum()), as autograd hands it over
    gen = torch.Generator().manual_seed(0)
    kh = (4 * torch.randn(5, 50, parts * 37, generator=gen)).requires_grad_()
    h0 = torch.rand(5, 37, generator=gen).requires_grad_()
    h = fn(kh, h0)
    assert type(h.grad_fn).__name__ == "_CellCBackward"
    h.sum().backward()
    kh64, h064 = kh.detach().double().requires_grad_(), h0.detach().double().requires_grad_()
    ref = reference(kh64, h064)
    ref.sum().backward()
    torch.testing.assert_close(h, ref.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kh.grad, kh64.grad.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h0.grad, h064.grad.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fn,parts", [(fused.mingru, 2), (fused.minlstm, 3)], ids=["mingru", "minlstm"])
def test_fused_nan_stays_nan(fn, parts, impl):
    # a NaN pre-activation must reach the output (and so the loss), never be turned into a number
    kh = torch.randn(2, 6, parts * 9)
    kh[1, 2, 4] = float("nan")
    kh.requires_grad_()
    h = fn(kh)
    h.sum().backward()
    assert torch.isnan(h[1, 2:, 4]).all() and torch.isfinite(h[0]).all() and torch.isfinite(h[1, :2]).all()
    assert torch.isfinite(kh.grad[0]).all() and torch.isnan(kh.grad[1, :3, 4]).all()


@needs_c
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_tail", [False, True])
def test_c_conv_matches_the_multiply_adds(bias, with_tail):
    torch.manual_seed(0)
    conv = CausalConv(11, 4, bias).double()
    x = torch.randn(3, 9, 11, dtype=torch.float64, requires_grad=True)
    tail = torch.randn(3, 3, 11, dtype=torch.float64, requires_grad=True) if with_tail else None
    weights = torch.randn(3, 9, 11, dtype=torch.float64)
    inputs = [x, *conv.parameters()] + ([tail] if with_tail else [])
    results = {}
    for use_c in (True, False):
        kernels.USE_C = use_c
        try:
            y, new_tail = conv(x, tail)
        finally:
            kernels.USE_C = True
        assert (type(y.grad_fn).__name__ == "_ConvCBackward") == use_c
        results[use_c] = (y, new_tail, torch.autograd.grad((y * weights).sum(), inputs))
    (y, t, grads), (y_ref, t_ref, grads_ref) = results[True], results[False]
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t, t_ref, rtol=0, atol=0)
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    xp = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused.causal_conv, (xp, w, torch.randn(3, dtype=torch.float64,
                                                                           requires_grad=True)))


def test_causal_conv_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"xp \(B, T \+ K - 1, C\) and a depthwise weight \(C, 1, K\)"):
        fused.causal_conv(torch.randn(2, 8, 5), torch.randn(4, 1, 3))


def test_without_a_c_compiler_the_op_cells_run_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("C_KERNELS_CACHE", str(tmp_path / "cache"))  # nothing built before
    monkeypatch.setattr(kernels, "_libraries", {})
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer="mingru", conv=4))
    idx = torch.randint(0, 11, (2, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, loss = model(idx, idx)
        model(idx, idx)
    assert [str(w.message) for w in caught if "kernels.c could not be built" in str(w.message)] != []
    assert len([w for w in caught if "kernels.c" in str(w.message)]) == 1  # once per process, not per call
    loss.backward()
    assert "_MinGRUBackward" in _grad_fns(loss) and "_CellCBackward" not in _grad_fns(loss)


@needs_c
def test_c_library_is_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("C_KERNELS_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_libraries", {})
    assert kernels.library(torch.float32) is not None
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("kernels_float_") and built[0].endswith(".so")  # no leftovers
    monkeypatch.setattr(kernels, "_libraries", {})  # as a second process: it loads the library, compiles nothing

    def no_compiling(*args):
        raise AssertionError("compiled again")
    monkeypatch.setattr(kernels, "_compile", no_compiling)
    assert kernels.library(torch.float32) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == built
