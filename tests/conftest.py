"""Test setup. Everything runs from the repository alone: the tests that train read an excerpt of tiny Shakespeare
shipped in tests/data/, prepared once per session into a temporary data folder (MINRNN_DATA_DIR), never into data/.
Where ../shared/data (or SHARED_DATA) has the offline copies, the data scripts read them instead of downloading."""
import atexit
import os
import shutil
import tempfile

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXCERPT = os.path.join(ROOT, "tests", "data", "tinyshakespeare_excerpt.txt")  # its first 48 KB, public domain
# the first 5 KB of each of the five unseen plays (Project Gutenberg's texts, public domain), for the test split
PLAYS_EXCERPT = os.path.join(ROOT, "tests", "data", "plays_excerpt")
SHARED_DATA = os.environ.get("SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
if os.path.exists(os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt")):
    os.environ.setdefault("SHAKESPEARE_INPUT", os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt"))
if os.path.isdir(os.path.join(SHARED_DATA, "tiktoken_cache")):
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(SHARED_DATA, "tiktoken_cache"))
os.environ.setdefault("WANDB_MODE", "offline")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # the triton scan backend's kernels, on the CPU (slowly)
os.environ["CI"] = "true"  # plain log lines instead of a progress bar, also in subprocesses
# the tests' datasets, apart from the user's data/ (set before common is imported: it reads this once)
os.environ["MINRNN_DATA_DIR"] = tempfile.mkdtemp(prefix="minrnn-test-data-")
atexit.register(shutil.rmtree, os.environ["MINRNN_DATA_DIR"], ignore_errors=True)


def triton_interpreter_problem():
    """Why Triton's CPU interpreter cannot run kernels here, or None. Before Triton 3.7 the interpreter turns a
    one-element array into a Python int with int(array), which NumPy 2.4 refuses ("only 0-dimensional arrays can be
    converted to Python scalars"); PyTorch 2.9's CUDA build pins Triton 3.5. The kernels on a GPU are not affected."""
    try:
        import numpy
        import triton
    except ImportError:
        return None

    def version(v):
        return tuple(int(part) for part in v.split("+")[0].split(".")[:2])
    if version(triton.__version__) < (3, 7) and version(numpy.__version__) >= (2, 4):
        return (f"Triton {triton.__version__}'s CPU interpreter fails with NumPy {numpy.__version__} (fixed in "
                "Triton 3.7; or install numpy<2.4)")
    return None


INTERPRETER_PROBLEM = None if torch.cuda.is_available() else triton_interpreter_problem()


@pytest.fixture(scope="session")
def char_dataset():
    """tests/data's excerpt of tiny Shakespeare at the character level, as data/shakespeare_char/prepare.py prepares
    the whole corpus (59 characters, 43 K training and 5 K validation tokens), with a test split from the plays'
    excerpt (19 K tokens), under the name shakespeare_char."""
    import importlib.util

    import common
    spec = importlib.util.spec_from_file_location("prepare_char", os.path.join(common.SCRIPTS_DIR, "shakespeare_char",
                                                                               "prepare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out_dir = common.dataset_dir("shakespeare_char")
    if not os.path.exists(os.path.join(out_dir, "meta.json")):
        os.makedirs(out_dir, exist_ok=True)
        module.prepare(EXCERPT, out_dir, plays=PLAYS_EXCERPT)
    return "shakespeare_char"
