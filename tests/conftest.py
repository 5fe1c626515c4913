"""Test setup: point the data scripts at the offline copies in shared/data (SHARED_DATA, else ../shared/data)."""
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
os.environ.setdefault("SHAKESPEARE_INPUT", os.path.join(SHARED_DATA, "tinyshakespeare", "input.txt"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(SHARED_DATA, "tiktoken_cache"))
os.environ.setdefault("WANDB_MODE", "offline")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # the triton scan backend's kernels, on the CPU (slowly)
os.environ["CI"] = "true"  # plain log lines instead of a progress bar, also in subprocesses


@pytest.fixture(scope="session")
def char_dataset():
    """Tiny Shakespeare, character level, prepared once into data/shakespeare_char/."""
    if not os.path.exists(os.environ["SHAKESPEARE_INPUT"]):
        pytest.fail(f"tiny Shakespeare not found at {os.environ['SHAKESPEARE_INPUT']}; set SHARED_DATA")
    from common import prepare_dataset
    prepare_dataset("shakespeare_char")
    return "shakespeare_char"
