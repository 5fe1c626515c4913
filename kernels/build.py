"""
The CPU's C kernels (cpu.c), built and loaded: minGRU's and minLSTM's cells, Mamba's selective scan and the causal
conv (cells.py, run where fastpath.py finds they compute what model.py defines) and the linear scan (scan.py's "c"
backend).

cpu.c is compiled on first use with the system's C compiler (cc, or CC=...), once for float32 and once for
float64, into a per-user cache (~/.cache/minrnn, or C_KERNELS_CACHE) keyed by its text, the compiler, the flags and
the CPU, so an edit to cpu.c is compiled again on the next run. The functions are called through ctypes on the
tensors' memory: each caller allocates the outputs as tensors and keeps every input alive in a name while C reads it.

C_KERNELS=0 turns the kernels off, and so does a machine where nothing compiles (with one warning): model.py's own
definitions then run, and scan.py's chunked backend.
"""
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings

import torch

USE_C = os.environ.get("C_KERNELS", "1") != "0"
_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu.c")
# compile flags, then link flags, tried in order. OpenMP spreads the batch over PyTorch's threads (the same libgomp,
# which PyTorch has loaded by then); -fno-trapping-math lets the loops with branches vectorise (not -ffast-math, which
# would let NaNs vanish); compilers without these get plain loops
_FAST = ["-O3", "-march=native", "-fno-trapping-math"]
_FLAGS = [(_FAST + ["-fopenmp"], ["-fopenmp", "-lm"]), (_FAST, ["-lm"]), (["-O3"], ["-lm"])]
_CTYPES = {torch.float32: "float", torch.float64: "double"}
# each function's arguments: pointers (p) and sizes (n), in order
_SIGNATURES = {"mingru_forward": "pppnnn", "minlstm_forward": "pppnnn", "mingru_backward": "ppppppnnn",
               "minlstm_backward": "ppppppnnn", "conv_forward": "ppppnnnn", "conv_backward": "ppppppnnnn",
               "scan_forward": "ppppnnn", "scan_backward": "pppppppnnn", "selective_forward": "p" * 12 + "nnnn",
               "selective_backward": "p" * 19 + "nnnn"}
_libraries = {}


def _cache_dir():
    return os.environ.get("C_KERNELS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "minrnn")


def _compile(cc, cflags, ldflags, real, path):
    """Build cpu.c into path, by way of a temporary directory beside it: never a half-written library."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        obj, lib = os.path.join(tmp, "kernels.o"), os.path.join(tmp, "kernels.so")
        for cmd in ([cc, *cflags, "-fPIC", f"-Dreal={real}", "-c", _SOURCE, "-o", obj],
                    [cc, "-shared", obj, "-o", lib, *ldflags]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                raise OSError(f"{' '.join(cmd)}: {(res.stderr.strip().splitlines() or ['failed'])[-1]}")
        os.replace(lib, path)


def _build(real):
    """cpu.c compiled with `real` = float or double and loaded, from the cache when it is there; (library, None),
    or (None, why) where nothing compiles."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or sys.platform == "win32":
        return None, "no C compiler found (set CC=... to name one)"
    with open(_SOURCE, "rb") as f:
        source = f.read()
    cpu = platform.processor() + platform.machine()
    if os.path.exists("/proc/cpuinfo"):  # -march=native: a library built on one CPU may not run on another
        with open("/proc/cpuinfo") as f:
            cpu += next((line for line in f if line.startswith("flags")), "")
    errors = []
    for cflags, ldflags in _FLAGS:
        key = hashlib.sha256("\0".join([cc, real, *cflags, *ldflags, cpu]).encode() + source).hexdigest()[:16]
        path = os.path.join(_cache_dir(), f"kernels_{real}_{key}.so")
        try:
            if not os.path.exists(path):
                _compile(cc, cflags, ldflags, real, path)
            lib = ctypes.CDLL(path)
        except OSError as e:  # no such compiler, a flag it lacks, a cache it cannot write: try the next flags
            errors.append(str(e))
            continue
        for name, args in _SIGNATURES.items():
            getattr(lib, name).argtypes = [ctypes.c_void_p if a == "p" else ctypes.c_long for a in args]
        return lib, None
    return None, errors[-1]


def library(dtype):
    """The kernels for float32 or float64, built or loaded once per process; None if they cannot be built."""
    if dtype not in _libraries:
        lib, why = _build(_CTYPES[dtype])
        if lib is None:
            warnings.warn(f"kernels/cpu.c could not be built ({why}); PyTorch ops run instead, slower on a CPU",
                          stacklevel=3)
        _libraries[dtype] = lib
    return _libraries[dtype]


def available(dtype=torch.float32):
    """Whether the kernels can run for dtype: C_KERNELS unset or 1, outside torch.compile (which fuses the PyTorch
    ops itself; a ctypes call would break its graph), and cpu.c built."""
    return USE_C and not torch.compiler.is_compiling() and dtype in _CTYPES and library(dtype) is not None


def usable(x):
    """Whether the kernels serve tensor x: a CPU float32/float64 tensor, and available() for its dtype."""
    return x.device.type == "cpu" and available(x.dtype)


def ptr(t):
    """A tensor's memory for ctypes (None stays NULL)."""
    return None if t is None else t.data_ptr()
