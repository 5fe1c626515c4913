"""
minGRU's and minLSTM's scan on CUDA by fla-core's HGRN kernels (flash-linear-attention's ops, pip install fla-core).

fla's HGRN ops compute h_t = exp(g_t) * h_{t-1} + x_t on (B, T, D): chunk_hgrn (chunks of 128 steps, side by side,
then the chunks' states carried across) and fused_recurrent_hgrn (every channel walks its T steps). model.py's
gates give the a and b of h_t = a_t * h_{t-1} + b_t, so the map is x = b and g = log a: the kernel then multiplies
by exp(log a), which is a to float32's rounding, and never sees a formula of its own. chunk_hgrn gives no gradient
to its initial state, so a_0 * h0 is folded into b_0 (h_0 = a_0 h0 + b_0 all the same) and autograd carries h0's
gradient and a_0's share through that sum.

Nothing here defines a model: fastpath.py calls scan() only after checking that it computes what model.py's
scan_linear(*gates(kh), h0) does. It runs only on CUDA tensors below float64 (fla computes in float32), with
fla-core installed, outside torch.compile (which traces model.py's ops and scan.py's Triton scan instead), with
neither SCAN_BACKEND nor C_KERNELS=0 set. fla is imported on first use (its import takes seconds), so a CPU run never
loads it.
"""
import functools
import importlib.util

import torch

import scan as scan_module
from kernels import build

# fla's op: "chunk" or "fused_recurrent"; the chunked one is the faster forward + backward from T = 256 in the
# benchmark in fla's source (B=16, D=128, H800)
OP = "chunk"
_DEVICES = ("cuda",)  # fla's kernels are Triton's, for a GPU (tests/test_fla.py adds "cpu" under the interpreter)
_ops = {}


@functools.cache
def installed():
    return importlib.util.find_spec("fla") is not None


def usable(x):
    """Whether scan() may serve tensor x (see above): a float64 model keeps scan.py's float64 scan."""
    return (x.device.type in _DEVICES and x.dtype != torch.float64 and build.USE_C and scan_module.DEFAULT_BACKEND
            is None and not torch.compiler.is_compiling() and installed())


def ops():
    """fla's HGRN ops by name, imported on first use."""
    if not _ops:
        from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
        _ops.update(chunk=chunk_hgrn, fused_recurrent=fused_recurrent_hgrn)
    return _ops


def inputs(a, b, h0=None):
    """The (x, g) of fla's h_t = exp(g_t) h_{t-1} + x_t from zero that give scan_linear(a, b, h0)'s h, with a, b
    (B, T, D) and h0 (B, D) or None."""
    if h0 is not None:  # h_0 = a_0 h0 + b_0: the same sum, taken here where autograd sees it
        b = torch.cat([b[:, :1] + a[:, :1] * h0.unsqueeze(1), b[:, 1:]], dim=1)
    # a = 0 (a saturated gate, 1 - sigmoid(k) rounding to 0) would give log 0 = -inf and 0/0 in log's backward; the
    # smallest normal number instead changes h by h_{t-1} * 1e-38, and the gradient reaching a there is 0, where the
    # gate's own derivative (sigmoid's s * (1 - s)) is 0 already
    return b, torch.log(a.clamp_min(torch.finfo(a.dtype).tiny))


def scan(a, b, h0=None, op=None):
    """h_t = a_t * h_{t-1} + b_t (B, T, D), as scan_linear(a, b, h0), by fla's op (OP unless named)."""
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32  # as scan_linear: never below float32
    a, b, h0 = a.to(dtype), b.to(dtype), None if h0 is None else h0.to(dtype)
    with torch.autocast(device_type=a.device.type, enabled=False):
        h, _ = ops()[op or OP](*inputs(a, b, h0))
    return h


def cell(gates, kh, h0=None):
    """model.py's scan_linear(*gates(kh), h0) with fla's kernel as the scan: gates is the mixer's bound method."""
    return scan(*gates(kh), h0)
