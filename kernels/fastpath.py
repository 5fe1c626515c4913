"""
Whether a fast kernel may stand in for model.py's own code: only where it computes what model.py defines.

model.py writes each recurrence once (MinGRU.gates and MinLSTM.gates turn the pre-activations into the a and b of
h_t = a_t h_{t-1} + b_t, Mamba.discretize turns its selective parameters into them, Mamba.contract reads C . h and
Mamba.readout adds the D skip and the gate; CausalConv.convolve is the conv) and builds both its parallel path and
its step from that. On a CPU, kernels/cpu.c has cells that run gates and scan in one pass each way, Mamba's scan
from Delta's pre-activation to the gated readout without ever forming its (B, T, H, N) tensors, and the conv in one
loop. Before a kernel first stands in for a definition, check() runs both on a small random input and compares the
values and the gradients of the input, of the initial state and of every parameter of the module. It is done once
per definition (its code, and the globals and functions that code reads, recursively: an edit or a monkeypatch makes
a new one), dtype and width, and costs a few milliseconds. Where they agree the kernel runs; where they do not (g
changed, a new parameter, another normalisation) model.py's definition runs, and one FastPathWarning names the
kernel and says how to get the speed back.

On CUDA, with fla-core installed, minGRU's and minLSTM's scan is fla's HGRN kernel (kernels/hgrn.py), checked the
same way against gates and scan_linear, the initial state's gradient included; without fla-core, or where it steps
aside, model.py's gates and scan.py's CUDA scan run.

C_KERNELS=0 turns every kernel off (build.py): model.py's definitions run, with no check and no warning.
"""
import types
import warnings
from functools import partial

import torch
from torch import nn

from kernels import build, cells, hgrn
from scan import default_linear_backend, scan_linear

PARTS = {"mingru": 2, "minlstm": 3}  # a cell's pre-activations per hidden unit: [k, p] and [f, i, p]
_verdicts = {}  # (kernel, dtype, width, fingerprint) -> None (agrees) or why not


class FastPathWarning(UserWarning):
    """A kernel stepped aside: it does not compute what model.py defines, so model.py's code runs instead."""


def cell(name, gates, kh):
    """kernels/cpu.c's `name` cell as a function (kh, h0) -> h, where it computes what model.py's definition
    h = scan_linear(*gates(kh), h0) computes; None where it cannot run here or does not agree (the caller then runs
    the definition). gates is the mixer's bound method, kh its pre-activations (B, T, parts*H). On CUDA: fla's
    HGRN kernel as the scan of gates(kh), where fla-core is installed and it computes the same (kernels/hgrn.py)."""
    if hgrn.usable(kh) and kh.dim() == 3 and kh.size(-1) % PARTS[name] == 0:
        return _hgrn_cell(name, gates, kh)
    if not (build.usable(kh) and kh.dim() == 3 and kh.size(-1) % PARTS[name] == 0
            and default_linear_backend("cpu", kh.size(1)) == "c"):  # SCAN_BACKEND=chunked asks for the ops
        return None
    key, fast = (name, kh.dtype, kh.size(-1), _fingerprint(gates)), partial(cells.cell, name)
    if key not in _verdicts:
        H = kh.size(-1) // PARTS[name]
        gen = torch.Generator().manual_seed(0)
        probe = (3 * torch.randn(2, 9, kh.size(-1), generator=gen, dtype=kh.dtype),  # both sides of g's branch
                 torch.randn(2, H, generator=gen, dtype=kh.dtype))
        _verdicts[key] = _judge(f"kernels/cpu.c's {name} cell", _qualname(gates), gates.__self__, probe, fast,
                                lambda kh, h0: scan_linear(*gates(kh), h0))
    return fast if _verdicts[key] is None else None


def _hgrn_cell(name, gates, kh):
    key = ("hgrn", hgrn.OP, name, kh.dtype, kh.size(-1), _fingerprint(gates))
    fast = partial(hgrn.cell, gates)
    if key not in _verdicts:
        H = kh.size(-1) // PARTS[name]
        gen = torch.Generator().manual_seed(0)
        # 131 steps: past chunk_hgrn's first chunk of 128, into a ragged one
        probe = (3 * torch.randn(2, 131, kh.size(-1), generator=gen, dtype=kh.dtype).to(kh.device),
                 torch.randn(2, H, generator=gen, dtype=kh.dtype).to(kh.device))
        _verdicts[key] = _judge(f"fla-core's {hgrn.OP}_hgrn as the {name} scan", _qualname(gates), gates.__self__,
                                probe, fast, lambda kh, h0: scan_linear(*gates(kh), h0), stacklevel=4,
                                instead="with scan.py's CUDA scan",
                                remedy="map gates onto fla's h_t = exp(g_t) h_{t-1} + x_t in kernels/hgrn.py")
    return fast if _verdicts[key] is None else None


def selective(discretize, contract, readout, dt):
    """kernels/cpu.c's selective scan as a function (dt, A, B, C, u, z, h0) -> (y, h_T), where it computes what
    model.py's definition computes: a, b = discretize(dt, A, B, u), the linear scan from h0, y = readout(contract(h,
    C), u, z) and the last h; None otherwise. discretize, contract and readout are the Mamba module's bound methods,
    dt its Delta's pre-activation (B, T, H)."""
    module = discretize.__self__
    if not (build.usable(dt) and dt.dim() == 3 and default_linear_backend("cpu", dt.size(1)) == "c"):
        return None
    H, N = module.A_log.shape
    key = ("selective", dt.dtype, H, N, *map(_fingerprint, (discretize, contract, readout)))
    fast = partial(cells.selective_scan, D=module.D)
    if key not in _verdicts:
        gen = torch.Generator().manual_seed(0)

        def randn(*shape):
            return torch.randn(*shape, generator=gen, dtype=dt.dtype)

        # A < 0 as Mamba's -exp(A_log) (cpu.c's exp is as exact above 0, where the states grow too fast for a
        # comparison to mean much); dt on both sides of softplus's bend
        probe = (3 * randn(2, 9, H), -torch.exp(randn(H, N)), randn(2, 9, N), randn(2, 9, N), randn(2, 9, H),
                 3 * randn(2, 9, H), randn(2, H, N))

        def reference(dt, A, B, C, u, z, h0):
            a, b = discretize(dt, A, B, u)
            h = scan_linear(a.flatten(2), b.flatten(2), h0.flatten(1)).view(a.shape)
            return readout(contract(h, C), u, z), h[:, -1]

        _verdicts[key] = _judge("kernels/cpu.c's selective scan", f"{_qualname(discretize)}, .contract and "
                                ".readout", module, probe, fast, reference,
                                inputs=("Delta's pre-activation", "A", "B", "C", "the input", "the gate",
                                        "the initial state"))
    return fast if _verdicts[key] is None else None


def conv(convolve, xp):
    """kernels/cpu.c's causal conv as a function xp -> y, with the module's conv.weight and conv.bias, where it
    computes what model.py's convolve (CausalConv.convolve, bound) computes; None otherwise."""
    module = convolve.__self__
    if not (build.usable(xp) and xp.dim() == 3 and isinstance(getattr(module, "conv", None), nn.Conv1d)):
        return None
    weight, bias = module.conv.weight, module.conv.bias
    key = ("conv", xp.dtype, tuple(weight.shape), bias is None, _fingerprint(convolve))
    fast = partial(cells.causal_conv, weight=weight, bias=bias)
    if key not in _verdicts:
        gen = torch.Generator().manual_seed(0)
        probe = (torch.randn(2, weight.size(-1) + 6, xp.size(-1), generator=gen, dtype=xp.dtype),)
        _verdicts[key] = _judge("kernels/cpu.c's causal conv", _qualname(convolve), module, probe, fast, convolve)
    return fast if _verdicts[key] is None else None


def _judge(kernel, definition, module, probe, fast, reference, inputs=("the input", "the initial state"),
           stacklevel=3, instead="correctly but slower on a CPU", remedy="make kernels/cpu.c compute the same"):
    """None if fast(*probe) computes what reference(*probe) does (a tensor, or a tuple of them), in values and in
    the gradients of the probe's tensors (named by inputs) and of every parameter of module; else why not (a kernel
    that raises included), after one warning that says so, what runs instead and how to get the speed back
    (remedy). stacklevel points the warning at the mixer's forward."""
    tol = {"rtol": 1e-9, "atol": 1e-9} if probe[0].dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
    names, params = zip(*[(n, p) for n, p in module.named_parameters() if p.requires_grad]) or ((), ())
    with torch.inference_mode(False), torch.enable_grad():  # also when first met inside evaluation's no_grad
        tensors = [t.clone().requires_grad_() for t in probe]
        want = reference(*tensors)
        try:
            why = _differs(want, fast(*tensors), [*tensors, *params], list(inputs[:len(tensors)]) + list(names), tol)
        except Exception as e:  # a kernel that cannot run here (a Triton it does not support, say) steps aside too
            why = f"it raised {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    if why is not None:
        warnings.warn(f"{kernel} steps aside: it does not compute what model.py's {definition} does ({why}), so "
                      f"{definition} runs as written, {instead}. For the speed back, {remedy}; C_KERNELS=0 runs "
                      f"model.py's code without this check", FastPathWarning, stacklevel=stacklevel)
    return why


def _differs(want, got, wrt, names, tol):
    """None if got (the kernel's outputs) equals want (the definition's) within tol, and so do their gradients with
    respect to wrt (named by names); else how they differ."""
    want, got = (want,) if torch.is_tensor(want) else tuple(want), (got,) if torch.is_tensor(got) else tuple(got)
    want = tuple(w.to(g.dtype) for w, g in zip(want, got))
    if [w.shape for w in want] != [g.shape for g in got]:
        return f"its outputs have shapes {[tuple(w.shape) for w in want]}, the kernel's {[tuple(g.shape) for g in got]}"
    if not all(torch.allclose(w, g, **tol) for w, g in zip(want, got)):
        gap = max((w - g).abs().max().item() for w, g in zip(want, got))
        return f"outputs differ by up to {gap:.3g} on a test input"
    gen = torch.Generator().manual_seed(1)
    weights = [torch.randn(w.shape, generator=gen, dtype=w.dtype).to(w.device) for w in want]
    d_want = torch.autograd.grad(sum((w * r).sum() for w, r in zip(want, weights)), wrt, allow_unused=True)
    d_got = torch.autograd.grad(sum((g * r).sum() for g, r in zip(got, weights)), wrt, allow_unused=True)
    for name, dw, dg in zip(names, d_want, d_got):
        dw = torch.zeros_like(dg) if dw is None and dg is not None else dw
        dg = torch.zeros_like(dw) if dg is None and dw is not None else dg
        if dw is not None and not torch.allclose(dw, dg, **tol):
            return f"the gradients of {name} differ by up to {(dw - dg).abs().max().item():.3g}"
    return None


def _qualname(method):
    """MinGRU.gates, also for a function set on the class by a monkeypatch."""
    return f"{type(method.__self__).__name__}.{getattr(method, '__name__', 'definition')}"


def _fingerprint(fn):
    """What decides what fn computes, as a hashable key: its code, and the values of the globals, closure cells and
    instance attributes that the code reads, through every Python function among them (the instance's own methods
    included). Code enters by value (equal code, equal key), anything else by value where it has one (numbers,
    strings) or else by identity: a monkeypatch or an edit gives a new key."""
    owner = getattr(fn, "__self__", None)
    mro = [k for k in type(owner).__mro__ if k not in (nn.Module, object)] if owner is not None else []
    seen, parts, stack = set(), [], [getattr(fn, "__func__", fn)]
    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        parts.append(f.__code__)
        found = [c.cell_contents for c in f.__closure__ or ()]
        for name in _names(f.__code__):
            if name in f.__globals__:
                found.append(f.__globals__[name])
            elif owner is not None:  # self.<name>: a method of the mixer's class, or a plain attribute
                found += [vars(k)[name] for k in mro if name in vars(k)][:1]
                if not isinstance(owner.__dict__.get(name), (nn.Module, torch.Tensor, type(None))):
                    found.append(owner.__dict__[name])
        for value in found:
            if isinstance(value, types.FunctionType):
                stack.append(value)
            else:
                parts.append(_value(value))
    return tuple(parts)


_NAMES = {}


def _names(code):
    """Every name that code and the code nested in it (lambdas, comprehensions) reads, once per code object."""
    if code not in _NAMES:
        names, codes = [], [code]
        while codes:
            c = codes.pop()
            codes += [k for k in c.co_consts if isinstance(k, types.CodeType)]
            names += [n for n in c.co_names if n not in names]
        _NAMES[code] = tuple(names)
    return _NAMES[code]


def _value(v):
    return v if isinstance(v, (int, float, str, bool, type(None))) else id(v)
