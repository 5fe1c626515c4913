"""Results JSON, the only record of hours of runs, is written atomically through one helper (common.write_json)."""
import json
import os
import re

import pytest

import common
from common import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_write_that_fails_halfway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json(str(path), {"runs": {"a": 1.5}})
    real = common.atomic_write

    def half_then_fail(path, write, prefix=common.TEMP_PREFIX):
        def broken(f):
            f.write(b'{"runs": {"a": 1.5, "b"')  # half the new file, then the process is killed
            raise KeyboardInterrupt
        real(path, broken, prefix)

    monkeypatch.setattr(common, "atomic_write", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        write_json(str(path), {"runs": {"a": 1.5, "b": 1.6}})
    assert json.loads(path.read_text()) == {"runs": {"a": 1.5}}
    assert os.listdir(tmp_path) == ["results.json"]  # no temp file left behind
    monkeypatch.undo()
    write_json(str(path), {"runs": {"a": 1.5, "b": 1.6}})
    assert json.loads(path.read_text()) == {"runs": {"a": 1.5, "b": 1.6}}


def test_every_results_json_goes_through_the_helper():
    # experiments/ and benchmarks/ write experiments_out/ and bench_out/: no json.dump to a path there, and no
    # .json file opened for writing, outside common.write_json
    sources = [os.path.join(d, f) for d in ("experiments", "benchmarks") for f in os.listdir(os.path.join(ROOT, d))
               if f.endswith(".py")] + ["bench.py"]
    offenders = []
    for source in sources:
        with open(os.path.join(ROOT, source)) as f:
            text = f.read()
        if re.search(r"json\.dump\(", text) or re.search(r"open\([^)]*json[^)]*,\s*['\"]w", text):
            offenders.append(source)
    assert offenders == [], f"{offenders} write JSON without common.write_json"
    assert len(sources) > 10
