"""The data scripts: one entry point for all, and a half-prepared dataset counts as unprepared."""
import importlib.util
import inspect
import os
import shutil
import sys

import pytest

import common
from common import DataError, load_meta, prepare_dataset
from configurator import ConfigError

SCRIPTS = sorted(d for d in os.listdir(common.SCRIPTS_DIR) if os.path.exists(os.path.join(common.SCRIPTS_DIR, d,
                                                                                          "prepare.py")))


def load_script(name):
    path = os.path.join(common.SCRIPTS_DIR, name, "prepare.py")
    spec = importlib.util.spec_from_file_location(f"prepare_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_prepare_script_has_the_entry_point_train_py_calls(name):
    prepare = load_script(name).prepare  # train.py calls prepare(out_dir=...); the scripts call it with input_path
    assert list(inspect.signature(prepare).parameters)[:2] == ["input_path", "out_dir"]
    assert all(p.default is not inspect.Parameter.empty for p in inspect.signature(prepare).parameters.values())


def test_unprepared_openwebtext_without_datasets_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DATA_DIR", str(tmp_path))
    shutil.copytree(os.path.join(os.path.dirname(common.__file__), "data", "openwebtext"), tmp_path / "openwebtext")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as on a machine without the package: import fails
    with pytest.raises(DataError, match="pip install datasets"):
        prepare_dataset("openwebtext")


def test_a_dataset_without_meta_json_is_prepared_again(tmp_path, monkeypatch):
    # a prepare killed after the .bin files but before meta.json: no vocabulary, so not a usable dataset
    monkeypatch.setattr(common, "DATA_DIR", str(tmp_path))
    excerpt = os.path.join(os.path.dirname(__file__), "data", "tinyshakespeare_excerpt.txt")
    monkeypatch.setenv("SHAKESPEARE_INPUT", excerpt)
    (tmp_path / "shakespeare_char").mkdir()
    for split in ("train", "val"):
        (tmp_path / "shakespeare_char" / f"{split}.bin").write_bytes(b"\0\0" * 100)
    prepare_dataset("shakespeare_char")
    meta = load_meta("shakespeare_char")
    with open(excerpt) as f:
        text = f.read()
    assert meta["vocab_size"] == len(set(text)) and meta["train_tokens"] + meta["val_tokens"] == len(text)
    assert os.path.getsize(tmp_path / "shakespeare_char" / "val.bin") == 2 * meta["val_tokens"]


def test_an_unprepared_dataset_of_your_own_says_how_to_prepare_it(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "DATA_DIR", str(tmp_path))
    for name in ("mytext", "text"):  # data/text/ holds the script for your own text, not a dataset named text
        with pytest.raises(ConfigError, match=f"python data/text/prepare.py --input FILE --name {name}"):
            prepare_dataset(name)
    assert common.how_to_prepare("shakespeare_char") == "python data/shakespeare_char/prepare.py"
