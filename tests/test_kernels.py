"""kernels/: cpu.c's minGRU and minLSTM cells, Mamba's selective scan and its causal conv against model.py's own
definitions (gates, then the scan; Mamba.discretize, the scan and Mamba.contract; CausalConv.convolve) in float64,
values and gradients; fastpath.py's check, which lets a kernel run only
where it computes what model.py defines; and how cpu.c is built."""
import warnings

import pytest
import torch

from kernels import build, cells, fastpath
from model import GPT, CausalConv, GPTConfig, Mamba, MinGRU, MinLSTM
from scan import scan_linear

C_BUILT = build.library(torch.float64) is not None and build.library(torch.float32) is not None
NO_C = "kernels/cpu.c could not be built here (no working C compiler)"
pytestmark = pytest.mark.skipif(not C_BUILT, reason=NO_C)
CELLS = {"mingru": MinGRU, "minlstm": MinLSTM}


def definition(name, H=5):
    """model.py's parallel definition of the cell: (kh, h0) -> scan_linear(*gates(kh), h0), by the plain loop."""
    mixer = CELLS[name](GPTConfig(n_embd=H, n_head=1, mixer=name))
    return lambda kh, h0=None: scan_linear(*mixer.gates(kh), h0, backend="reference")


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("T", [1, 7, 64, 100])
@pytest.mark.parametrize("with_h0", [False, True])
def test_c_cell_matches_model_definition(name, T, with_h0):
    parts = fastpath.PARTS[name]
    gen = torch.Generator().manual_seed(T)
    kh = (3 * torch.randn(3, T, parts * 5, generator=gen, dtype=torch.float64)).requires_grad_()
    h0 = torch.rand(3, 5, generator=gen, dtype=torch.float64).requires_grad_() if with_h0 else None
    weights = torch.randn(3, T, 5, generator=gen, dtype=torch.float64)
    inputs = [kh] + ([h0] if with_h0 else [])
    out, ref = cells.cell(name, kh, h0), definition(name)(kh, h0)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12, msg=lambda m: f"{name} C cell, values:\n{m}")
    assert type(out.grad_fn).__name__ == "_CellCBackward"
    grads = torch.autograd.grad((out * weights).sum(), inputs)
    ref_grads = torch.autograd.grad((ref * weights).sum(), inputs)
    for what, g, r in zip(["kh", "h0"], grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12, msg=f"{name} C cell: the gradient of {what} differs")


@pytest.mark.parametrize("name", CELLS)
def test_c_cell_gradcheck(name):
    kh = torch.randn(2, 5, fastpath.PARTS[name] * 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda kh, h0: cells.cell(name, kh, h0), (kh, h0))


@pytest.mark.parametrize("name", CELLS)
def test_c_cell_extreme_inputs_stay_finite(name):
    # gates saturated both ways (minLSTM's f and i both far below zero: i / (f + i) must not be 0 / 0)
    kh = torch.tensor([-200.0, -150.0, 0.0, 50.0, 150.0, 300.0]).repeat(1, 64, fastpath.PARTS[name]).requires_grad_()
    h = cells.cell(name, kh)
    h.sum().backward()
    assert torch.isfinite(h).all() and torch.isfinite(kh.grad).all()


@pytest.mark.parametrize("name", CELLS)
def test_c_cell_in_float32_matches_the_float64_definition(name):
    # float32: exp is cpu.c's own (a Taylor series, within a few ulp); H = 37 leaves a remainder after the vector
    # loop; the gradient arrives expanded (h.sum()), as autograd hands it over
    gen = torch.Generator().manual_seed(0)
    kh = (4 * torch.randn(5, 50, fastpath.PARTS[name] * 37, generator=gen)).requires_grad_()
    h0 = torch.rand(5, 37, generator=gen).requires_grad_()
    h = cells.cell(name, kh, h0)
    h.sum().backward()
    kh64, h064 = kh.detach().double().requires_grad_(), h0.detach().double().requires_grad_()
    ref = definition(name, 37)(kh64, h064)
    ref.sum().backward()
    torch.testing.assert_close(h, ref.float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kh.grad, kh64.grad.float(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h0.grad, h064.grad.float(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CELLS)
def test_c_cell_nan_stays_nan(name):
    # a NaN pre-activation must reach the output (and so the loss), never be turned into a number
    kh = torch.randn(2, 6, fastpath.PARTS[name] * 9)
    kh[1, 2, 4] = float("nan")
    kh.requires_grad_()
    h = cells.cell(name, kh)
    h.sum().backward()
    assert torch.isnan(h[1, 2:, 4]).all() and torch.isfinite(h[0]).all() and torch.isfinite(h[1, :2]).all()
    assert torch.isfinite(kh.grad[0]).all() and torch.isnan(kh.grad[1, :3, 4]).all()


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


@pytest.mark.parametrize("mixer", CELLS)
def test_unedited_model_trains_through_the_c_kernels(mixer, monkeypatch):
    """With model.py as shipped, the check passes and the C cell and conv run (and C_KERNELS=0 runs the ops)."""
    model = GPT(GPTConfig(block_size=16, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer=mixer, conv=4))
    idx = torch.randint(0, 11, (2, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastpath.FastPathWarning)
        _, loss = model(idx, idx)
    assert {"_CellCBackward", "_ConvCBackward"} <= _grad_fns(loss)
    monkeypatch.setattr(build, "USE_C", False)
    _, loss_ops = model(idx, idx)
    names = _grad_fns(loss_ops)
    assert "_CellCBackward" not in names and "_ConvCBackward" not in names and "SigmoidBackward0" in names
    torch.testing.assert_close(loss_ops, loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mixer", CELLS)
def test_the_cell_runs_in_float32_under_autocast(mixer):
    torch.manual_seed(0)
    layer = CELLS[mixer](GPTConfig(n_embd=8, n_head=1, mixer=mixer))
    x = torch.randn(2, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, h = layer(x)
    assert h.dtype == torch.float32 and y.dtype == torch.bfloat16
    _, h32 = layer(x)
    torch.testing.assert_close(h, h32, rtol=0.05, atol=0.05)  # only the Linear ran in bf16


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_tail", [False, True])
def test_c_conv_matches_convolve(bias, with_tail, monkeypatch):
    torch.manual_seed(0)
    conv = CausalConv(11, 4, bias).double()
    x = torch.randn(3, 9, 11, dtype=torch.float64, requires_grad=True)
    tail = torch.randn(3, 3, 11, dtype=torch.float64, requires_grad=True) if with_tail else None
    weights = torch.randn(3, 9, 11, dtype=torch.float64)
    inputs = [x, *conv.parameters()] + ([tail] if with_tail else [])
    results = {}
    for use_c in (True, False):
        monkeypatch.setattr(build, "USE_C", use_c)
        y, new_tail = conv(x, tail)
        assert (type(y.grad_fn).__name__ == "_ConvCBackward") == use_c
        results[use_c] = (y, new_tail, torch.autograd.grad((y * weights).sum(), inputs))
    (y, t, grads), (y_ref, t_ref, grads_ref) = results[True], results[False]
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t, t_ref, rtol=0, atol=0)
    for g, r in zip(grads, grads_ref):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    xp = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cells.causal_conv, (xp, w, torch.randn(3, dtype=torch.float64,
                                                                           requires_grad=True)))


def test_causal_conv_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"xp \(B, T \+ K - 1, C\) and a depthwise weight \(C, 1, K\)"):
        cells.causal_conv(torch.randn(2, 8, 5), torch.randn(4, 1, 3))


def test_an_edited_definition_is_checked_once_and_runs_as_written(monkeypatch):
    """fastpath's verdict is per definition: a monkeypatched g is a new definition, checked once (one warning, not one
    per call), and from then on model.py's ops run; the check also runs from inside no_grad, as in evaluation."""
    import model as model_module
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=1, n_embd=8, mixer="mingru"))
    idx = torch.randint(0, 11, (2, 8))
    monkeypatch.setattr(model_module, "g", lambda x: torch.sigmoid(x) + 0.25)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            model(idx, idx)
        _, loss = model(idx, idx)
    steps_aside = [w for w in caught if issubclass(w.category, fastpath.FastPathWarning)]
    assert len(steps_aside) == 1, [str(w.message) for w in caught]
    message = str(steps_aside[0].message)
    assert "mingru cell steps aside" in message and "MinGRU.gates" in message and "C_KERNELS=0" in message
    assert steps_aside[0].filename.endswith("model.py")  # the warning points at the mixer's forward
    assert "_CellCBackward" not in _grad_fns(loss) and "SigmoidBackward0" in _grad_fns(loss)


def test_fingerprint_follows_the_code_and_what_it_reads(monkeypatch):
    import model as model_module
    layer = MinGRU(GPTConfig(n_embd=4, n_head=1, mixer="mingru"))
    key = fastpath._fingerprint(layer.gates)
    assert fastpath._fingerprint(MinGRU(GPTConfig(n_embd=4, n_head=1, mixer="mingru")).gates) == key
    monkeypatch.setattr(model_module, "g", torch.sigmoid)  # a global that gates reads, through g
    assert fastpath._fingerprint(layer.gates) != key
    monkeypatch.undo()
    assert fastpath._fingerprint(layer.gates) == key
    monkeypatch.setattr(MinGRU, "gates", lambda self, kh: (kh, kh))  # the method itself
    assert fastpath._fingerprint(layer.gates) != key


def test_without_a_c_compiler_model_definitions_run_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("C_KERNELS_CACHE", str(tmp_path / "cache"))  # nothing built before
    monkeypatch.setattr(build, "_libraries", {})
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer="mingru", conv=4))
    idx = torch.randint(0, 11, (2, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, loss = model(idx, idx)
        model(idx, idx)
    assert [str(w.message) for w in caught if "cpu.c could not be built" in str(w.message)] != []
    assert len([w for w in caught if "cpu.c" in str(w.message)]) == 1  # once per process, not per call
    loss.backward()
    assert "SigmoidBackward0" in _grad_fns(loss) and "_CellCBackward" not in _grad_fns(loss)


def test_c_library_is_built_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("C_KERNELS_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "_libraries", {})
    assert build.library(torch.float32) is not None
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("kernels_float_") and built[0].endswith(".so")  # no leftovers
    monkeypatch.setattr(build, "_libraries", {})  # as a second process: it loads the library, compiles nothing

    def no_compiling(*args):
        raise AssertionError("compiled again")
    monkeypatch.setattr(build, "_compile", no_compiling)
    assert build.library(torch.float32) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == built


def test_an_edited_conv_runs_as_written(monkeypatch):
    """The conv's check: a new definition of CausalConv.convolve (here, a gain on its output) makes the C conv step
    aside, and the output is the new definition's."""
    def convolve(self, xp):
        T, k = xp.size(1) - self.conv.kernel_size[0] + 1, self.conv.kernel_size[0]
        w = self.conv.weight[:, 0]
        return 2 * sum(xp[:, j:j + T] * w[:, j] for j in range(k)) + self.conv.bias

    torch.manual_seed(0)
    conv = CausalConv(5, 3, True)
    x = torch.randn(2, 7, 5)
    monkeypatch.setattr(CausalConv, "convolve", convolve)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y, _ = conv(x)
    assert [w for w in caught if "causal conv steps aside" in str(w.message)] != []
    torch.testing.assert_close(y, convolve(conv, torch.nn.functional.pad(x, (0, 0, 2, 0))))
    assert type(y.grad_fn).__name__ != "_ConvCBackward"


def mamba_inputs(B, T, H, N, dtype=torch.float64, seed=0, scale=1.0):
    """Delta's pre-activation dt (both sides of softplus's bend), A (< 0, as -exp(A_log)), B, C, u, the gate z and
    h0 for a selective scan, requiring gradients."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    dt, A = scale * randn(B, T, H), -torch.exp(randn(H, N))
    return [t.to(dtype).requires_grad_() for t in (dt, A, randn(B, T, N), randn(B, T, N), randn(B, T, H),
                                                   3 * randn(B, T, H), randn(B, H, N))]


def selective_definition(mamba, dt, A, B, C, u, z, h0):
    """model.py's parallel definition: discretize, the plain-loop scan, contract, readout; (y, h_T)."""
    a, b = mamba.discretize(dt, A, B, u)
    h = scan_linear(a.flatten(2), b.flatten(2), None if h0 is None else h0.flatten(1), backend="reference")
    h = h.view(a.shape)
    return mamba.readout(mamba.contract(h, C), u, z), h[:, -1]


def mamba_layer(H=6, N=4):
    """A float64 Mamba layer of width H whose D (the readout's skip, an input of the kernel) is random, not ones."""
    mamba = Mamba(GPTConfig(n_embd=H, n_head=1, mixer="mamba", d_state=N)).double()
    with torch.no_grad():
        mamba.D.copy_(torch.randn(H, dtype=torch.float64))
    return mamba


@pytest.mark.parametrize("T", [1, 15, 16, 17, 50])  # around cpu.c's checkpoint every 16 steps
@pytest.mark.parametrize("with_h0", [False, True])
def test_c_selective_scan_matches_model_definition(T, with_h0):
    mamba, (B, H, N) = mamba_layer(), (3, 6, 4)
    inputs = mamba_inputs(B, T, H, N, seed=T)
    if not with_h0:
        inputs[-1] = None
    got, want = cells.selective_scan(*inputs, D=mamba.D), selective_definition(mamba, *inputs)
    weights = [torch.randn(w.shape, dtype=torch.float64) for w in want]
    wrt = [t for t in inputs if t is not None] + [mamba.D]
    g_got = torch.autograd.grad(sum((g * w).sum() for g, w in zip(got, weights)), wrt)
    g_want = torch.autograd.grad(sum((g * w).sum() for g, w in zip(want, weights)), wrt)
    names = ["y", "h_T", "ddt", "dA", "dB", "dC", "du", "dz"] + ["dh0"] * with_h0 + ["dD"]
    for name, a, b in zip(names, [*got, *g_got], [*want, *g_want], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_c_selective_scan_gradcheck():
    mamba, inputs = mamba_layer(3, 2), mamba_inputs(2, 19, 3, 2, seed=5)
    assert torch.autograd.gradcheck(lambda *t: cells.selective_scan(*t[:-1], D=t[-1]), [*inputs, mamba.D])


def test_c_selective_scan_in_float32_and_at_extreme_steps():
    """float32 against the float64 definition, and dt from about -100 to 100 (Delta = softplus(dt) from e^-100 to
    100, a = exp(Delta A) from 1 to 0): the kernel's own exp and softplus must keep up; A of both signs as an edited
    model could make it (exp below e^88)."""
    mamba = mamba_layer()
    for scale in (1.0, 8.0, 40.0):
        inputs = mamba_inputs(2, 33, 6, 4, seed=3, scale=scale)
        want = selective_definition(mamba, *inputs)
        got = cells.selective_scan(*[t.detach().float() for t in inputs], D=mamba.D.detach().float())
        for a, b in zip(got, want):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a.double(), b.detach(), rtol=1e-4, atol=1e-4)
    inputs = mamba_inputs(2, 9, 6, 4, seed=4)
    inputs[1] = (0.5 * torch.randn(6, 4, dtype=torch.float64)).requires_grad_()  # some A > 0: h grows
    for a, b in zip(cells.selective_scan(*[t.detach().float() for t in inputs], D=mamba.D.detach().float()),
                    selective_definition(mamba, *inputs)):
        torch.testing.assert_close(a.double(), b.detach(), rtol=1e-4, atol=1e-4)


def test_c_softplus_is_exact_far_below_its_bend():
    """softplus(dt) ~ e^dt for dt << 0, where log(1 + e^dt) would round 1 + e^dt to 1 in float: cpu.c's Delta must
    keep its relative accuracy there (T = 1, u = 1, B = 1, C = 1 and h0 = 0, so y = Delta SiLU(z) with D = 0)."""
    dt = torch.tensor([[[-30.0, -10.0, 5.0]]])
    ones = torch.ones(1, 1, 1)
    y, _ = cells.selective_scan(dt, -torch.ones(3, 1), ones, ones, torch.ones(1, 1, 3), torch.full((1, 1, 3), 50.0),
                                D=torch.zeros(3))
    torch.testing.assert_close(y, torch.nn.functional.softplus(dt.double()).float() * 50, rtol=1e-6, atol=0)


def test_mamba_trains_through_the_selective_scan_without_its_full_size_tensors(monkeypatch):
    """As shipped the check passes, the C scan runs (C_KERNELS=0: model.py's ops, the same loss), and nothing of
    the (B, T, H, N) size of the composed form's a, b and h is saved for the backward."""
    B, T, H, N = 2, 40, 12, 16  # the MLP's (B, T, 4C) activations are a quarter of (B, T, H, N)
    model = GPT(GPTConfig(block_size=T, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer="mamba",
                          expansion=1.5, d_state=N, conv=4))
    idx = torch.randint(0, 11, (B, T))
    model(idx, idx)  # the first call runs the check, with tensors of its own
    saved = []
    with warnings.catch_warnings(), torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t.numel()) or t, lambda t: t):
        warnings.simplefilter("error", fastpath.FastPathWarning)
        _, loss = model(idx, idx)
    assert "_SelectiveCBackward" in _grad_fns(loss)
    assert max(saved) < B * T * H * N / 4
    monkeypatch.setattr(build, "USE_C", False)
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        _, loss_ops = model(idx, idx)
    assert "_SelectiveCBackward" not in _grad_fns(loss_ops) and max(saved) >= B * T * H * N
    torch.testing.assert_close(loss_ops, loss, rtol=1e-5, atol=1e-6)


def zoh(self, dt, A, B, u):
    """Mamba.discretize with the exact zero-order hold on B too (b = (a - 1) / A * B u, as the S4 papers write it)."""
    dt = torch.nn.functional.softplus(dt)
    a = torch.exp(dt.unsqueeze(-1) * A)
    return a, (a - 1) / A * (u.unsqueeze(-1) * B.unsqueeze(-2))


def no_skip(self, y, u, z):
    """Mamba.readout without the D skip."""
    return y * torch.nn.functional.silu(z)


@pytest.mark.parametrize("name, edit", [("discretize", zoh), ("readout", no_skip)])
def test_an_edit_inside_the_fused_scan_runs_as_written(monkeypatch, name, edit):
    """An edit to one of the definitions the fused scan computes: cpu.c's scan steps aside, with one warning, the
    model computes the edit (as with C_KERNELS=0), and step, built on the same definitions, agrees with it."""
    monkeypatch.setattr(Mamba, name, edit)
    model = GPT(GPTConfig(block_size=16, vocab_size=11, n_layer=1, n_head=1, n_embd=8, mixer="mamba")).double()
    idx = torch.randint(0, 11, (2, 16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logits, loss = model(idx, idx)
    steps_aside = [str(w.message) for w in caught if issubclass(w.category, fastpath.FastPathWarning)]
    assert len(steps_aside) == 1 and "selective scan steps aside" in steps_aside[0]
    assert "Mamba.zoh, .contract and .readout" in steps_aside[0] \
        or "Mamba.discretize, .contract and .readout" in steps_aside[0]
    assert "_SelectiveCBackward" not in _grad_fns(loss)
    monkeypatch.setattr(build, "USE_C", False)
    torch.testing.assert_close(model(idx, idx)[0], logits, rtol=1e-12, atol=1e-12)
    state = model.init_state(2)
    stepped = []
    for t in range(16):
        out, state = model.step(idx[:, t], state)
        stepped.append(out)
    torch.testing.assert_close(torch.stack(stepped, dim=1), logits, rtol=1e-10, atol=1e-10)
