"""The configurator: every key checked, clear errors, ints accepted for floats, None defaults overridable."""
import dataclasses
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


def test_help_shows_each_key_with_its_value_and_what_it_does(capsys):
    """--help: exit status 0, every key once, with the value after the config file and the overrides (not the
    library default) and its one line of help from the config classes' comments."""
    import train
    with pytest.raises(SystemExit) as exit_info:
        parse_config(train.Config, ["config/shakespeare_char_cpu_mingru.py", "--n_layer=3", "--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    by_key = {line.split()[0]: line for line in lines[1:]}
    assert set(by_key) == {f.name for f in dataclasses.fields(train.Config)}
    assert "n_layer = 3 " in by_key["n_layer"] and "blocks" in by_key["n_layer"]  # the override
    config_lr = parse_config(train.Config, ["config/shakespeare_char_cpu_mingru.py"]).learning_rate
    assert config_lr != train.TrainConfig.learning_rate  # the config file's value, not the library default
    assert f"learning_rate = {config_lr!r}" in by_key["learning_rate"]
    assert "peak learning rate" in by_key["learning_rate"]
    assert "'mingru'" in by_key["mixer"] and "minlstm" in by_key["mixer"]  # the config file's value; the choices
    assert all(len(line.split(None, 3)) == 4 for line in lines[1:]), "a key without help"
