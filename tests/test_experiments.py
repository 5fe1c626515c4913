"""The experiment drivers, on runs too short to learn anything: they train, collect every eval, and report."""
import json
import statistics
import sys

import pytest

from experiments import selective_copying, shakespeare


def run_driver(module, monkeypatch, tmp_path, argv):
    monkeypatch.setattr(module, "OUT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [module.__name__, *argv])
    module.main()


def test_shakespeare_driver_reports_mean_and_std_over_seeds(char_dataset, tmp_path, monkeypatch, capsys):
    run_driver(shakespeare, monkeypatch, tmp_path, ["--seeds", "2", "--mixers", "mingru", "--",
                                                    "--max_iters=4", "--eval_interval=2", "--eval_iters=1"])
    data = json.loads((tmp_path / "shakespeare_cpu.json").read_text())
    runs = data["curves"]["mingru"]
    assert [[e["step"] for e in run] for run in runs] == [[0, 2, 4], [0, 2, 4]]
    finals = [run[-1]["val"] for run in runs]
    assert finals[0] != finals[1], "the two seeds trained identical models"
    assert data["summary"]["mingru"]["mean"] == pytest.approx(statistics.mean(finals))
    assert data["summary"]["mingru"]["std"] == pytest.approx(statistics.stdev(finals))
    table = (tmp_path / "shakespeare_cpu.md").read_text()
    assert f"| minGRU | {statistics.mean(finals):.4f} ± {statistics.stdev(finals):.4f} |" in table
    assert (tmp_path / "shakespeare_cpu.png").stat().st_size > 0

    (tmp_path / "shakespeare_cpu.md").unlink()
    run_driver(shakespeare, monkeypatch, tmp_path, ["--report_only"])
    assert (tmp_path / "shakespeare_cpu.md").read_text() == table


def test_selective_copying_driver_tabulates_accuracy_by_layers(tmp_path, monkeypatch):
    run_driver(selective_copying, monkeypatch, tmp_path, [
        "--layers", "1", "2", "--mixers", "minlstm", "--", "--copy_seq_len=16", "--copy_n_data=4",
        "--block_size=20", "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--batch_size=4"])
    data = json.loads((tmp_path / "selective_copying.json").read_text())
    assert set(data["results"]) == {"minlstm-1", "minlstm-2"}
    accs = [data["results"][k]["final_acc"] for k in ("minlstm-1", "minlstm-2")]
    assert all(0 <= a <= 1 for a in accs)
    table = (tmp_path / "selective_copying.md").read_text().splitlines()
    assert table[0] == "| mixer | 1 layer | 2 layers |"
    assert table[2] == f"| minlstm | {accs[0]:.2%} | {accs[1]:.2%} |"


def test_a_failed_run_stops_the_driver_and_names_its_log(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="failed; see .*train.log"):
        run_driver(selective_copying, monkeypatch, tmp_path, ["--layers", "1", "--mixers", "mingru", "--",
                                                              "--max_iters=-1"])
