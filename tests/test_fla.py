"""kernels/hgrn.py: minGRU's and minLSTM's gates mapped onto fla-core's HGRN recurrence h_t = exp(g_t) h_{t-1} + x_t,
against fla's own naive loop and model.py's gates + scan_linear, the initial state's gradient included; fla's Triton
kernels under Triton's interpreter where they run there; fastpath.py taking fla's kernel where it agrees and stepping
aside where it does not; and on CUDA, that the fast path is fla's kernel and matches."""
import os
import warnings

import pytest
import torch
from conftest import INTERPRETER_PROBLEM

from kernels import build, fastpath, hgrn
from model import GPTConfig, MinGRU, MinLSTM
from scan import scan_linear

naive = pytest.importorskip("fla.ops.hgrn.naive", reason="fla-core is not installed (requirements-dev.txt)")
CELLS = {"mingru": MinGRU, "minlstm": MinLSTM}
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and not torch.cuda.is_available() and not INTERPRETER_PROBLEM
NOT_INTERPRETED = INTERPRETER_PROBLEM or ("fla's kernels run here under Triton's interpreter only without CUDA "
                                          "(tests/conftest.py sets it)")
# fla's naive loop casts its inputs to float32 (.float()) whatever they are: our side stays float64, the comparison
# is at float32's accuracy
LOOP_TOL = {"rtol": 1e-5, "atol": 1e-5}


def layer(name, H=5, dtype=torch.float64):
    torch.manual_seed(0)
    return CELLS[name](GPTConfig(n_embd=H, n_head=1, mixer=name)).to(dtype)


def inputs(name, T, with_h0, dtype=torch.float64, H=5, B=3):
    """kh (B, T, parts*H) on both sides of g's branch and of the gates' middle, h0 (B, H) of either sign or None,
    and the weights of a loss sum(h * w)."""
    gen = torch.Generator().manual_seed(T)
    kh = (3 * torch.randn(B, T, fastpath.PARTS[name] * H, generator=gen, dtype=dtype)).requires_grad_()
    h0 = torch.randn(B, H, generator=gen, dtype=dtype).requires_grad_() if with_h0 else None
    return kh, h0, torch.randn(B, T, H, generator=gen, dtype=dtype)


def grads(h, w, kh, h0):
    return torch.autograd.grad((h * w).sum(), [kh] + ([h0] if h0 is not None else []), retain_graph=True)


def assert_same(out, ref, w, kh, h0, what, **tol):
    torch.testing.assert_close(out, ref.to(out.dtype), **tol, msg=lambda m: f"{what}, values:\n{m}")
    for name, g, r in zip(["kh", "h0"], grads(out, w, kh, h0), grads(ref, w, kh, h0)):
        torch.testing.assert_close(g, r, **tol, msg=lambda m, name=name: f"{what}, the gradient of {name}:\n{m}")


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("T", [1, 63, 129])
@pytest.mark.parametrize("with_h0", [False, True])
def test_gates_mapped_onto_fla_naive_loop_give_model_definition(name, T, with_h0):
    """gates -> (x, g) with h0 folded into x_0, run by fla's loop from zero: model.py's scan_linear(*gates(kh), h0)."""
    cell = layer(name)
    kh, h0, w = inputs(name, T, with_h0)
    out, _ = naive.naive_recurrent_hgrn(*hgrn.inputs(*cell.gates(kh), h0))
    ref = scan_linear(*cell.gates(kh), h0, backend="reference")
    assert_same(out, ref, w, kh, h0, f"{name} through fla's naive loop", **LOOP_TOL)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("T", [1, 63, 129])
def test_folding_h0_into_x0_is_fla_initial_state(name, T):
    """The fold gives what fla's own initial_state gives (values, and the gradients of kh and h0), and in float64
    (our loop, exp(g) for a) it is scan_linear's h0 to the last digits."""
    cell = layer(name)
    kh, h0, w = inputs(name, T, with_h0=True)
    a, b = cell.gates(kh)
    folded, _ = naive.naive_recurrent_hgrn(*hgrn.inputs(a, b, h0))
    fla_h0, _ = naive.naive_recurrent_hgrn(b, torch.log(a), initial_state=h0)
    assert_same(folded, fla_h0, w, kh, h0, f"{name}: h0 folded vs fla's initial_state", rtol=1e-6, atol=1e-6)
    x, g = hgrn.inputs(a, b, h0)
    exact = scan_linear(torch.exp(g), x, backend="reference")
    assert_same(exact, scan_linear(a, b, h0, backend="reference"), w, kh, h0, f"{name}: h0 folded, float64",
                rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CELLS)
def test_saturated_gates_stay_finite_through_the_log(name):
    """a = 0 where a gate saturates in float32 (minGRU's 1 - sigmoid(k) at k = 150): log a must not make the
    gradient NaN, and the result is model.py's."""
    pattern = torch.tensor([-200.0, -150.0, 0.0, 50.0, 150.0, 300.0]).repeat(2, 64, 1)
    pattern = pattern + torch.randn(pattern.shape, generator=torch.Generator().manual_seed(0))
    # minLSTM's f and i opposite, so that f' = f / (f + i) saturates too
    kh = torch.cat([sign * pattern for sign in (1, -1, 1)[:fastpath.PARTS[name]]], dim=-1).requires_grad_()
    h0 = torch.rand(2, 6).requires_grad_()
    w = torch.randn(2, 64, 6)
    cell = layer(name, H=6, dtype=torch.float32)
    a, _ = cell.gates(kh)
    assert (a == 0).any() and (a == 1).any()  # both saturations are tested
    out, _ = naive.naive_recurrent_hgrn(*hgrn.inputs(*cell.gates(kh), h0))
    ref = scan_linear(*cell.gates(kh), h0, backend="reference")
    assert all(torch.isfinite(g).all() for g in grads(out, w, kh, h0))
    assert_same(out, ref, w, kh, h0, f"{name} saturated", rtol=1e-5, atol=1e-4)


@pytest.fixture
def one_config(monkeypatch):
    """Triton's autotuner times each of a kernel's configs on the GPU's driver, and the interpreter has none: each
    of fla's autotuned HGRN kernels gets its first config instead (restored after the test)."""
    from fla.ops.hgrn import chunk, fused_recurrent
    from triton.runtime.autotuner import Autotuner
    for module in (chunk, fused_recurrent):
        for value in vars(module).values():
            while hasattr(value, "fn") and not isinstance(value, Autotuner):  # through @triton.heuristics
                value = value.fn
            if isinstance(value, Autotuner):
                monkeypatch.setattr(value, "configs", value.configs[:1])


def run_interpreted(fn):
    """fn(), or a skip where fla's kernel does not run under this Triton's interpreter (and only then)."""
    from triton.runtime.errors import InterpreterError
    try:
        return fn()
    except InterpreterError as e:
        if "mask has unsupported dtype" in str(e):
            pytest.skip("fla's chunk_hgrn does not run under Triton's interpreter: its forward kernel's load mask, "
                        "mask & (i_t * BT + i < T), comes out of the interpreter as integers, not booleans ('mask has "
                        f"unsupported dtype'); on a GPU the CUDA test below runs it ({e})")
        if "'int' object has no attribute 'to'" in str(e):  # Triton before 3.7
            pytest.skip("fla's chunk_hgrn does not run under this Triton's interpreter: a loop counter stays a Python "
                        f"int, and (i_t * BT).to(tl.int64) fails; on a GPU the CUDA test below runs it ({e})")
        raise


@pytest.mark.skipif(not INTERPRETED, reason=NOT_INTERPRETED)
@pytest.mark.parametrize("op", ["fused_recurrent", "chunk"])
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("T", [1, 129])
def test_fla_kernel_under_triton_interpreter_matches_model_definition(one_config, op, name, T):
    cell = layer(name, dtype=torch.float32)
    kh, h0, w = inputs(name, T, with_h0=True, dtype=torch.float32)
    ref = scan_linear(*cell.gates(kh), h0, backend="reference")
    run_interpreted(lambda: assert_same(hgrn.scan(*cell.gates(kh), h0, op=op), ref, w, kh, h0,  # and the backward
                                        f"{name} by fla's {op}_hgrn", rtol=1e-4, atol=1e-5))


@pytest.fixture
def fla_on_cpu(monkeypatch, one_config):
    """fastpath's fla branch on CPU tensors, by fused_recurrent_hgrn under the interpreter, with fresh verdicts."""
    monkeypatch.setattr(hgrn, "_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(hgrn, "OP", "fused_recurrent")
    monkeypatch.setattr(fastpath, "_verdicts", {})


def _grad_fns(loss):
    stack, seen = [loss.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack += [n for n, _ in node.next_functions]
    return {type(n).__name__ for n in seen}


@pytest.mark.skipif(not INTERPRETED, reason=NOT_INTERPRETED)
@pytest.mark.parametrize("name", CELLS)
def test_fastpath_takes_fla_kernel_where_it_agrees(fla_on_cpu, monkeypatch, name):
    cell = layer(name, H=8, dtype=torch.float32)
    x = torch.randn(2, 20, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    h0 = torch.rand(2, 8, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastpath.FastPathWarning)
        y, h_T = cell(x, h0)
    loss = y.square().sum() + h_T.sum()
    assert "FusedRecurrentHGRNFunctionBackward" in _grad_fns(loss)
    got = torch.autograd.grad(loss, [x, h0, *cell.parameters()])
    monkeypatch.setattr(build, "USE_C", False)  # every kernel off: model.py's ops
    y_ref, h_ref = cell(x, h0)
    loss_ref = y_ref.square().sum() + h_ref.sum()
    assert "FusedRecurrentHGRNFunctionBackward" not in _grad_fns(loss_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(got, torch.autograd.grad(loss_ref, [x, h0, *cell.parameters()])):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not INTERPRETED, reason=NOT_INTERPRETED)
def test_an_edit_fla_cannot_compute_steps_aside(fla_on_cpu, monkeypatch):
    """A gate a < 0 (exp(g) is never negative): fla's kernel steps aside, with one warning naming it, and the edited
    gates run as written."""
    original = MinGRU.gates
    monkeypatch.setattr(MinGRU, "gates", lambda self, kh: (original(self, kh)[0] - 0.5, original(self, kh)[1]))
    cell = layer("mingru", H=8, dtype=torch.float32)
    x = torch.randn(2, 20, 8, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, _ = cell(x)
        cell(x)
    steps_aside = [str(w.message) for w in caught if issubclass(w.category, fastpath.FastPathWarning)]
    assert len(steps_aside) == 1 and "fla-core's fused_recurrent_hgrn as the mingru scan steps aside" in steps_aside[0]
    assert "FusedRecurrentHGRNFunctionBackward" not in _grad_fns(y.sum())
    h = scan_linear(*cell.gates(cell.c_fc(x)), backend="reference").float()
    torch.testing.assert_close(y, cell.c_proj(h), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", CELLS)
def test_on_cuda_the_fast_path_is_fla_and_matches(monkeypatch, name):
    monkeypatch.setattr(fastpath, "_verdicts", {})
    cell = layer(name, H=32, dtype=torch.float32).cuda()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 300, 32, generator=gen).cuda().requires_grad_()  # 300: chunks of 128 and a ragged one
    h0 = torch.randn(3, 32, generator=gen).cuda().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastpath.FastPathWarning)
        y, h_T = cell(x, h0)
    loss = y.square().sum() + h_T.sum()
    assert f"{hgrn.OP.title().replace('_', '')}HGRNFunctionBackward" in _grad_fns(loss)
    got = torch.autograd.grad(loss, [x, h0, *cell.parameters()])
    monkeypatch.setattr(build, "USE_C", False)
    y_ref, h_ref = cell(x, h0)
    loss_ref = y_ref.square().sum() + h_ref.sum()
    assert not any("HGRN" in n for n in _grad_fns(loss_ref))
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for g, r in zip(got, torch.autograd.grad(loss_ref, [x, h0, *cell.parameters()])):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)
