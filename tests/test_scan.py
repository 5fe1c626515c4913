"""Every scan backend against the float64 loop: values, gradients (h0's included), precision, edge cases."""
import pytest
import torch
from conftest import INTERPRETER_PROBLEM
from torch.nn import functional as F

import scan as scan_module
from scan import BACKENDS, scan

# the triton backend runs here under Triton's CPU interpreter (tests/conftest.py sets TRITON_INTERPRET=1)
TRITON = pytest.param("triton", marks=[pytest.mark.skipif(not scan_module.triton_usable("cpu"),
                                                          reason="needs Triton: pip install triton"),
                                       pytest.mark.skipif(bool(INTERPRETER_PROBLEM), reason=str(INTERPRETER_PROBLEM))])
# the c backend needs kernels/cpu.c built (a C compiler); the CPU's default where it is
C = pytest.param("c", marks=pytest.mark.skipif(not scan_module.c_usable("cpu"),
                                               reason="kernels/cpu.c could not be built"))
FAST = [{"triton": TRITON, "c": C}.get(b, b) for b in BACKENDS if b != "reference"]


def gates(B, T, D, dtype=torch.float64, seed=0, extreme=True):
    """log_a from gate logits ~ N(0, 4^2), with saturated stretches (a ~ 1 and a ~ 0) when extreme."""
    gen = torch.Generator().manual_seed(seed)
    k = torch.randn(B, T, D, generator=gen, dtype=dtype) * 4
    if extreme:
        k[0, : T // 2] = -30.0  # a = 1 - sigmoid(k) ~ 1: the state is carried almost untouched
        k[-1, T // 3:] = 30.0  # a ~ 0: the state is forgotten at once
    log_a = -F.softplus(k)
    log_b = -F.softplus(-k) + torch.randn(B, T, D, generator=gen, dtype=dtype)
    return log_a, log_b


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("T", [1, 63, 64, 65, 1000])
@pytest.mark.parametrize("with_h0", [False, True])
def test_values_and_gradients_match_reference(backend, T, with_h0):
    B, D = 3, 4
    log_a, log_b = gates(B, T, D)
    h0 = torch.rand(B, D, dtype=torch.float64) if with_h0 else None
    inputs = [log_a.requires_grad_(), log_b.requires_grad_()] + ([h0.requires_grad_()] if with_h0 else [])
    w = torch.randn(B, T, D, dtype=torch.float64)  # a random linear loss, so every output gets its own weight
    ref = scan(log_a, log_b, h0, backend="reference")
    ref_grads = torch.autograd.grad((ref * w).sum(), inputs)
    out = scan(log_a, log_b, h0, backend=backend)
    grads = torch.autograd.grad((out * w).sum(), inputs)
    assert out.dtype == torch.float64 and out.shape == (B, T, D)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=0)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10 * max(r.abs().max().item(), 1.0))


# float32 error with saturated gates: the log-space forms subtract the running sum of log_a (over the whole sequence
# for `log`, over a 16-step chunk for `chunked_log`); the linear-space scan has no such cancellation.
@pytest.mark.parametrize("backend,rtol", [("log", 1e-2), ("chunked_log", 3e-5), ("chunked", 1e-6),
                                          pytest.param("triton", 1e-6, marks=TRITON.marks),
                                          pytest.param("c", 1e-6, marks=C.marks)])
def test_float32_matches_reference(backend, rtol):
    log_a, log_b = gates(2, 300, 8)
    out = scan(log_a.float(), log_b.float(), backend=backend)
    ref = scan(log_a, log_b, backend="reference")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=0)


@pytest.mark.parametrize("backend", FAST)
def test_zero_h0_gives_finite_gradients_equal_to_no_h0(backend):
    log_a, log_b = gates(2, 70, 3, dtype=torch.float32)
    h0 = torch.zeros(2, 3, requires_grad=True)
    log_a.requires_grad_()
    out = scan(log_a, log_b, h0, backend=backend)
    ga, gh0 = torch.autograd.grad(out.square().sum(), (log_a, h0))
    assert torch.isfinite(ga).all() and torch.isfinite(gh0).all()
    out_none = scan(log_a, log_b, backend=backend)
    torch.testing.assert_close(out, out_none)
    torch.testing.assert_close(ga, torch.autograd.grad(out_none.square().sum(), log_a)[0])
    # dL/dh0 by hand: h0 reaches h_t through the product of a_1..a_t, so dL/dh0 = sum_t 2 h_t * prod a
    decay = log_a.double().cumsum(dim=1).exp()
    torch.testing.assert_close(gh0.double(), (2 * out.double() * decay).sum(dim=1), rtol=1e-4, atol=1e-5)


def test_default_backend_keeps_float32_accuracy_at_16k():
    # the plain log scan subtracts a running sum that grows with T; the default must not decay like that
    log_a, log_b = gates(1, 16384, 4, extreme=False, seed=3)
    ref = scan(log_a, log_b, backend="reference")
    out = scan(log_a.float(), log_b.float())
    assert ((out.double() - ref).abs() / ref.abs()).max().item() <= 1e-5
    out = scan(log_a.float(), log_b.float(), backend="chunked_log")
    assert ((out.double() - ref).abs() / ref.abs()).max().item() <= 1e-5


def test_backends_run_with_autocast_off(monkeypatch):
    """On CPU no op of today's backends is changed by autocast, so only a spy sees whether scan() turned it off; on
    CUDA autocast would run some of them in half precision."""
    seen = []
    monkeypatch.setitem(scan_module._IMPLS, "chunked", lambda a, b, h0: seen.append(
        (torch.is_autocast_enabled("cpu"), a.dtype)) or torch.zeros_like(a))
    log_a, log_b = gates(1, 4, 2, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scan(log_a.bfloat16(), log_b.bfloat16(), backend="chunked")
    assert seen == [(False, torch.float32)]


@pytest.mark.parametrize("backend", FAST)
def test_autocast_still_scans_in_float32(backend):
    log_a, log_b = gates(2, 50, 4, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scan(log_a.bfloat16(), log_b.bfloat16(), backend=backend)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, scan(log_a.bfloat16().float(), log_b.bfloat16().float(), backend=backend))


def test_bad_input_is_a_clear_error():
    log_a, log_b = gates(2, 5, 3)
    with pytest.raises(ValueError, match="unknown scan backend"):
        scan(log_a, log_b, backend="fast")
    with pytest.raises(ValueError, match="same shape"):
        scan(log_a, log_b[:, :4])
    with pytest.raises(ValueError, match="h0 must have shape"):
        scan(log_a, log_b, torch.zeros(3, 2))


def test_chunked_backward_refuses_double_backward_with_a_clear_error():
    log_a, log_b = (t.float().requires_grad_() for t in gates(1, 8, 2, extreme=False))
    h = scan(log_a, log_b, backend="chunked")
    (grad,) = torch.autograd.grad(h.square().sum(), log_b, create_graph=True)  # a gradient that needs grad
    with pytest.raises(RuntimeError, match="differentiate twice a function that was marked with @once_diff"):
        grad.sum().backward()


@pytest.mark.parametrize("backend", [None, "reference", "chunked", TRITON, C])
@pytest.mark.parametrize("T", [1, 63, 65, 300])
@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_linear_matches_a_float64_loop_with_signed_b(backend, T, with_h0):
    """The linear-space entry (a >= 0, b and h0 of any sign), each backend that serves it, values and gradients,
    against the recurrence as written, differentiated by autograd."""
    gen = torch.Generator().manual_seed(T)
    B, D = 3, 5
    a = torch.rand(B, T, D, generator=gen, dtype=torch.float64)
    a[0, : T // 2] = 1.0  # the state carried untouched
    a[-1, T // 3:] = 0.0  # and forgotten at once
    b = torch.randn(B, T, D, generator=gen, dtype=torch.float64)
    h0 = torch.randn(B, D, generator=gen, dtype=torch.float64) if with_h0 else None
    inputs = [t.requires_grad_() for t in (a, b) + ((h0,) if with_h0 else ())]
    h, ref = torch.zeros(B, D, dtype=torch.float64) if h0 is None else h0, []
    for t in range(T):
        h = a[:, t] * h + b[:, t]
        ref.append(h)
    ref = torch.stack(ref, dim=1)
    w = torch.randn(B, T, D, generator=gen, dtype=torch.float64)
    ref_grads = torch.autograd.grad((ref * w).sum(), inputs)
    out = scan_module.scan_linear(a, b, h0, backend=backend)
    grads = torch.autograd.grad((out * w).sum(), inputs)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def test_scan_linear_refuses_what_it_cannot_serve():
    a, b = torch.rand(2, 5, 3), torch.randn(2, 5, 3)
    with pytest.raises(ValueError, match="same shape"):
        scan_module.scan_linear(a, b[:, :, :1])
    for backend in ("log", "chunked_log"):
        with pytest.raises(ValueError, match=f"the {backend} backend works on log\\(b\\).*reference, chunked, triton"):
            scan_module.scan_linear(a, b, backend=backend)
    with pytest.raises(ValueError, match="unknown scan backend 'fast'; choose one of reference, chunked, triton"):
        scan_module.scan_linear(a, b, backend="fast")


def test_scan_linear_default_follows_scan_backend_where_it_can(monkeypatch):
    from kernels import build
    cpu_default = "c" if scan_module.c_usable("cpu") else "chunked"  # c where kernels/cpu.c builds
    assert scan_module.default_backend("cpu", 64) == scan_module.default_linear_backend("cpu", 64) == cpu_default
    monkeypatch.setattr(scan_module, "DEFAULT_BACKEND", "reference")
    assert scan_module.default_linear_backend("cpu", 64) == "reference"
    monkeypatch.setattr(scan_module, "DEFAULT_BACKEND", "chunked_log")  # a log-space choice is scan()'s alone
    assert scan_module.default_linear_backend("cpu", 64) == cpu_default
    monkeypatch.setattr(scan_module, "DEFAULT_BACKEND", None)
    monkeypatch.setattr(build, "USE_C", False)  # C_KERNELS=0
    assert scan_module.default_backend("cpu", 64) == scan_module.default_linear_backend("cpu", 64) == "chunked"
    with pytest.raises(ValueError, match="the c scan backend needs CPU tensors and kernels/cpu.c built"):
        scan(*gates(1, 4, 2), backend="c")
