"""The configurator: every key checked, clear errors, ints accepted for floats, None defaults overridable."""
from dataclasses import dataclass

import pytest

from configurator import ConfigError, parse_config


@dataclass
class Cfg:
    n_layer: int = 2
    learning_rate: float = 1e-3
    name: str = "run"
    compile: bool = False
    vocab_size: int | None = None


def test_overrides_and_types():
    c = parse_config(Cfg, ["--n_layer=4", "--learning_rate=1", "--name=mingru", "--compile=True", "--vocab_size=65"])
    assert c == Cfg(4, 1.0, "mingru", True, 65)
    assert isinstance(c.learning_rate, float)


def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("import math\n_scratch = 3\nn_layer = 6\nlearning_rate = math.sqrt(4e-6)\n")
    c = parse_config(Cfg, [str(path), "--n_layer=8"])
    assert c.n_layer == 8 and c.learning_rate == pytest.approx(2e-3)


@pytest.mark.parametrize("argv,message", [
    (["--n_layers=4"], "unknown config key 'n_layers'. Did you mean 'n_layer'? Valid keys: compile, learning_rate"),
    (["--n_layer=2.5"], "'n_layer' expects int, got 2.5"),
    (["--n_layer=True"], "'n_layer' expects int, got True"),
    (["--compile=1"], "'compile' expects bool, got 1"),
    (["--learning_rate=fast"], "'learning_rate' expects float, got 'fast'"),
    (["--vocab_size=abc"], "'vocab_size' expects int or None, got 'abc'"),
    (["--n_layer"], "must look like --key=value"),
    (["missing_config.py"], "cannot read config file 'missing_config.py'"),
])
def test_errors_name_the_key(argv, message):
    with pytest.raises(ConfigError) as e:
        parse_config(Cfg, argv)
    assert message in str(e.value)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("n_layers = 4\n")
    with pytest.raises(ConfigError, match=r"cfg.py: unknown config key 'n_layers'"):
        parse_config(Cfg, [str(path)])
    path.write_text("n_layer = (\n")
    with pytest.raises(ConfigError, match="failed to run"):
        parse_config(Cfg, [str(path)])
