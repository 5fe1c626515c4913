"""data/text/prepare.py: any text file into a dataset, characters or GPT-2 BPE; clear errors that leave nothing
behind; a second run on the same input does nothing; the Shakespeare scripts' files stay as they were."""
import hashlib
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import EXCERPT, PLAYS_EXCERPT, ROOT

import common
import train
from benchmarks.prepare import before

SCRIPT = os.path.join(ROOT, "data", "text", "prepare.py")
# sha256 of what the Shakespeare scripts wrote from tests/data's excerpt before they used data/text/prepare.py
BEFORE = {
    "shakespeare_char": {"train.bin": "fe86e39b392d15014c59c21d932a69e8f277b7b8f341c80ce2a3c734b16ce957",
                         "val.bin": "edd496047d031d310ced684416aecbc5c7e30958229a837588db656abde86c10",
                         "meta.json": "1484f00370246b14ce7920e905de39a59e0ec900e34731f0fec8db2a093ab905"},
    "shakespeare": {"train.bin": "dd8350dd23cf618867377b3e6246ac3376a459c9534a0e4f17f1d73c750ae0db",
                    "val.bin": "52ce6d1fbe3096a674b8410c68cea8c4aeaa2e11aa3a9daaca862ca4fe58eafb",
                    "meta.json": "84f9d29c221873229118523115cb9c2b8f4778cb7110e3edbbe31ec558189f6e"},
}


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


text_prepare = load(SCRIPT, "text_prepare_under_test")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data folder of this test's own, for the script (MINRNN_DATA_DIR) and for train.py (common.DATA_DIR)."""
    path = tmp_path / "data"
    monkeypatch.setenv("MINRNN_DATA_DIR", str(path))
    monkeypatch.setattr(common, "DATA_DIR", str(path))
    return path


@pytest.fixture(scope="module")
def gpt2():
    try:
        import tiktoken
        return tiktoken.get_encoding("gpt2")
    except Exception:
        pytest.skip("GPT-2's BPE files are not available offline (set TIKTOKEN_CACHE_DIR)")


def cli(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def files(directory):
    """{name: bytes} of every file in directory."""
    return {f: (directory / f).read_bytes() for f in sorted(os.listdir(directory))}


def decoded(out_dir):
    meta = json.loads((out_dir / "meta.json").read_text())
    ids = np.concatenate([np.fromfile(out_dir / f"{s}.bin", dtype=np.uint16) for s in ("train", "val")])
    return "".join(meta["chars"][i] for i in ids), meta


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def many_characters(path):
    # 65,537 distinct characters, one more than uint16 token ids hold
    return write(path, "".join(chr(0x10000 + i) for i in range(65537)))


@pytest.mark.parametrize("make,args,message", [
    (None, ["--input", "missing.txt"], "no such file or folder: missing.txt"),
    (lambda d: write(d / "t.txt", ""), [], "is empty"),
    (lambda d: write(d / "t.txt", b"PK\x03\x04\x00\x00text"), [], "looks binary (a NUL byte at offset 4)"),
    (lambda d: write(d / "t.txt", b"a caf\xe9 au lait"), [], "is not valid utf-8: byte 0xe9 at offset 5"),
    (lambda d: write(d / "t.txt", b"a caf\xe9 au lait"), [], "--encoding"),
    (lambda d: write(d / "t.txt", "abc"), [], "the val split would hold 1 token (of 3"),
    (lambda d: write(d / "t.txt", "abcdefghij"), ["--val_fraction", "0.85"], "the train split would hold 1 token"),
    (lambda d: many_characters(d / "t.txt"), [], "65,537 distinct characters"),
    (lambda d: many_characters(d / "t.txt"), [], "use --tokenizer gpt2"),
    (lambda d: write(d / "books" / "notes.md", "not a .txt file"), ["--input", "BOOKS"], "holds no .txt files"),
    (lambda d: write(d / "t.txt", "some text\n"), ["--name", "shakespeare_char"], "one of this project's datasets"),
    (lambda d: write(d / "t.txt", "some text\n"), ["--name", "../up"], "cannot name a dataset"),
    (lambda d: write(d / "t.txt", "some text\n"), ["--val_fraction", "1.5"], "between 0 and 1"),
    (lambda d: write(d / "t.txt", "some text\n"), ["--encoding", "klingon"], "unknown encoding 'klingon'"),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, data_dir, make, args, message):
    path = make(tmp_path) if make else None
    args = [str(tmp_path / "books") if a == "BOOKS" else a for a in args]
    res = cli(*(["--input", path] if path and "--input" not in args else []), *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr and len(res.stderr.splitlines()) == 1
    assert not data_dir.exists()  # not even an empty folder


def test_a_bpe_split_too_short_is_refused_after_encoding_and_leaves_nothing(tmp_path, data_dir, gpt2):
    # ten words, 59 characters: val is the last 6, " hello", one token
    res = cli("--input", write(tmp_path / "t.txt", " ".join(["hello"] * 10)), "--tokenizer", "gpt2")
    assert res.returncode == 2 and "the val split would hold 1 token (of 10" in res.stderr
    assert not data_dir.exists()


def test_other_encodings_on_request(tmp_path, data_dir):
    assert cli("--input", write(tmp_path / "latin.txt", "un caf\xe9 cr\xe8me\n".encode("latin-1") * 3),
               "--encoding", "latin-1").returncode == 0
    text, meta = decoded(data_dir / "latin")
    assert text == "un caf\xe9 cr\xe8me\n" * 3 and meta["input"]["source"]["encoding"] == "iso8859-1"
    # UTF-16 has a NUL byte in every ASCII character: not a sign of a binary file there
    assert cli("--input", write(tmp_path / "wide.txt", ("wide text\n" * 3).encode("utf-16")), "--encoding",
               "utf-16").returncode == 0
    assert decoded(data_dir / "wide")[0] == "wide text\n" * 3


def test_a_second_run_on_the_same_input_does_nothing_and_other_input_needs_force(tmp_path, data_dir):
    a = write(tmp_path / "a.txt", "to be or not to be\n" * 20)
    assert cli("--input", a, "--name", "mine").returncode == 0
    out = data_dir / "mine"
    before_files = files(out)
    stamps = {f: os.stat(out / f).st_mtime_ns for f in before_files}
    res = cli("--input", a, "--name", "mine")
    assert res.returncode == 0 and "nothing to do" in res.stdout
    assert {f: os.stat(out / f).st_mtime_ns for f in before_files} == stamps
    b = write(tmp_path / "b.txt", "that is the question\n" * 20)
    res = cli("--input", b, "--name", "mine")
    assert res.returncode == 2 and "prepared from other input (" in res.stderr and "--force" in res.stderr
    res = cli("--input", a, "--name", "mine", "--val_fraction", "0.2")  # a setting that needs no BPE files offline
    assert res.returncode == 2 and "with other settings (val_fraction 0.1, not 0.2)" in res.stderr
    assert files(out) == before_files
    (out / "test.bin").write_bytes(b"\0\0" * 4)  # another dataset's test split goes with it
    assert cli("--input", b, "--name", "mine", "--force").returncode == 0
    assert decoded(out)[0] == "that is the question\n" * 20 and not (out / "test.bin").exists()
    assert sorted(os.listdir(out)) == ["meta.json", "train.bin", "val.bin"]  # no temp files


def test_a_folder_written_by_something_else_is_not_replaced_without_force(tmp_path, data_dir):
    write(data_dir / "theirs" / "train.bin", b"\0\0" * 10)
    res = cli("--input", write(tmp_path / "theirs.txt", "some text\n" * 5))
    assert res.returncode == 2 and "by something other than this script" in res.stderr


@pytest.mark.parametrize("first_time", [True, False])
def test_an_interrupted_run_leaves_the_old_dataset_as_it_was(tmp_path, data_dir, monkeypatch, first_time):
    out = data_dir / "t"
    if not first_time:
        text_prepare.prepare(write(tmp_path / "t.txt", "the old text\n" * 50), progress=False)
    old = files(out) if out.exists() else None
    write(tmp_path / "t.txt", "the new text\n" * 50)

    def interrupted(self, text):
        raise KeyboardInterrupt

    monkeypatch.setattr(text_prepare.SplitWriter, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        text_prepare.prepare(str(tmp_path / "t.txt"), force=True, progress=False)
    assert (files(out) if out.exists() else None) == old


def test_a_folder_and_several_inputs_are_joined_in_order(tmp_path, data_dir):
    write(tmp_path / "books" / "b.txt", "bee")  # no newline at the end: the next file starts on a line of its own
    write(tmp_path / "books" / "a.txt", "ay\n")
    write(tmp_path / "books" / "sub" / "c.txt", "sea\n")
    write(tmp_path / "books" / "notes.md", "left out")
    res = cli("--input", str(tmp_path / "books"), "--input", write(tmp_path / "d.txt", "dee\r\nend\r"))
    assert res.returncode == 0, res.stderr
    text, meta = decoded(data_dir / "books")
    assert text == "ay\nbee\nsea\ndee\nend\n"  # \r\n and \r read as \n, as Python's text mode reads them
    assert meta["tokenizer"] == "char" and meta["input"]["bytes"] == 3 + 3 + 4 + 9
    assert meta["train_tokens"] == int(len(text) * 0.9)  # the last tenth, counted in characters, is val


def tricky_text():
    """Some of the excerpt with what chunks can cut badly: multi-byte characters, \\r\\n, runs of blank lines and
    spaces, text without a space or newline for long stretches, and lines of Japanese (no ASCII before a newline)."""
    with open(EXCERPT, encoding="utf-8") as f:
        text = f.read()[:6000]
    return (text.replace("\n\n", "\n\n\n  \t\n").replace("e ", "\u00e9 ").replace("ing", "\u65e5\u672c")
            .replace("\n", "\r\n", 40) + "x" * 700 + "\u2028 \u3000\n\n" + "\u65e5\u672c\u8a9e\u3002\n" * 100)


@pytest.mark.parametrize("tokenizer", ["char", "gpt2"])
def test_chunked_encoding_equals_encoding_the_whole_text(tmp_path, data_dir, monkeypatch, tokenizer, request):
    """The streaming path against the plain one: read it all, split at 90% of the characters, encode each part."""
    enc = request.getfixturevalue("gpt2") if tokenizer == "gpt2" else None
    monkeypatch.setattr(text_prepare, "CHUNK_BYTES", 7)  # cuts through characters and \r\n
    monkeypatch.setattr(text_prepare, "BPE_BATCH_CHARS", 300)  # many batches, each cut in pieces
    path = write(tmp_path / "tricky.txt", tricky_text())
    meta = text_prepare.prepare(path, tokenizer=tokenizer, progress=False)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parts = [text[:int(len(text) * 0.9)], text[int(len(text) * 0.9):]]
    if enc is None:
        stoi = {c: i for i, c in enumerate(sorted(set(text)))}
        expected = [[stoi[c] for c in part] for part in parts]
        assert meta["chars"] == sorted(set(text))
    else:
        expected = [enc.encode_ordinary(part) for part in parts]
    for split, ids in zip(("train", "val"), expected):
        assert np.fromfile(data_dir / "tricky" / f"{split}.bin", dtype=np.uint16).tolist() == ids
        assert meta[f"{split}_tokens"] == len(ids)


def sha256s(out_dir, names):
    return {f: hashlib.sha256((out_dir / f).read_bytes()).hexdigest() for f in names}


@pytest.mark.parametrize("dataset", ["shakespeare_char", "shakespeare"])
def test_the_shakespeare_scripts_write_what_they_wrote_before(tmp_path, dataset, request, monkeypatch):
    monkeypatch.delenv("SHAKESPEARE_PLAYS", raising=False)
    if dataset == "shakespeare":
        request.getfixturevalue("gpt2")
    script = load(os.path.join(common.SCRIPTS_DIR, dataset, "prepare.py"), f"prepare_{dataset}_under_test")
    script.prepare(EXCERPT, str(tmp_path / "now"))
    assert sha256s(tmp_path / "now", BEFORE[dataset]) == BEFORE[dataset]
    (tmp_path / "then").mkdir()  # and the same as the algorithm they had, which bench.py prepare runs as "before"
    before("char" if dataset == "shakespeare_char" else "gpt2", EXCERPT, str(tmp_path / "then"))
    assert files(tmp_path / "then").items() <= files(tmp_path / "now").items()
    script.prepare(EXCERPT, str(tmp_path / "plays"), plays=PLAYS_EXCERPT)  # --plays: test.bin too, the rest alike
    meta = json.loads((tmp_path / "plays" / "meta.json").read_text())
    assert os.path.getsize(tmp_path / "plays" / "test.bin") == 2 * meta["test_tokens"] > 0
    assert sha256s(tmp_path / "plays", ["train.bin", "val.bin"]) == sha256s(tmp_path / "now", ["train.bin", "val.bin"])


def test_the_tokenizer_is_the_one_meta_json_names():
    encode, decode = common.tokenizer({"tokenizer": "char", "chars": ["\n", "a", "b"], "vocab_size": 3})
    assert encode("ab\n") == [1, 2, 0] and decode([2, 1]) == "ba"
    with pytest.raises(common.DataError, match="knows char and gpt2"):
        common.tokenizer({"tokenizer": "sentencepiece", "vocab_size": 8000})


def test_a_gpt2_meta_json_decodes_with_gpt2(gpt2):
    encode, decode = common.tokenizer({"tokenizer": "gpt2", "vocab_size": 50304})
    assert encode("Hello world") == gpt2.encode("Hello world") and decode(encode("Hello world")) == "Hello world"


TINY = ["--device=cpu", "--dtype=float32", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16",
        "--batch_size=8", "--eval_iters=1", "--warmup_iters=10", "--learning_rate=1e-2", "--mixer=mingru"]


@pytest.fixture
def one_thread():
    """Torch on one thread: a model this small gains nothing from two, and on a busy machine two threads spend
    most of each step waiting for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sample(out_dir, data_dir, *args):
    return subprocess.run([sys.executable, "sample.py", f"--out_dir={out_dir}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MINRNN_DATA_DIR": str(data_dir)})


def test_a_model_trained_on_a_prepared_text_samples_from_its_vocabulary(tmp_path, data_dir, one_thread):
    words = ["\u03b1\u03bb\u03c6\u03b1", "\u03b2\u03b7\u03c4\u03b1", "\u03b3\u03ac\u03bc\u03bc\u03b1"]  # Greek
    rng = np.random.default_rng(0)
    text = "\n".join(" ".join(rng.choice(words, 6)) for _ in range(400)) + "\n"
    assert cli("--input", write(tmp_path / "greek.txt", text)).returncode == 0
    train.main([*TINY, "--dataset=greek", "--max_iters=200", "--eval_interval=200", f"--out_dir={tmp_path / 'out'}"])
    res = sample(tmp_path / "out", data_dir, f"--start={words[0]}", "--max_new_tokens=60")
    assert res.returncode == 0, res.stderr
    generated = res.stdout[res.stdout.index(words[0]) + len(words[0]):].split("---------------")[0]
    assert set(generated) <= set(text) and any(w in generated for w in words)
    (data_dir / "greek" / "meta.json").unlink()  # without its vocabulary, decoding as GPT-2 BPE would be garbage
    res = sample(tmp_path / "out", data_dir, "--max_new_tokens=5")
    assert res.returncode == 2 and "whose meta.json (the vocabulary to decode with) is gone" in res.stderr


def test_a_model_trained_on_a_bpe_text_samples_its_tokens(tmp_path, data_dir, gpt2, one_thread):
    text = "The quick brown fox jumps over the lazy dog.\n" * 100
    assert cli("--input", write(tmp_path / "fox.txt", text), "--tokenizer", "gpt2").returncode == 0
    assert json.loads((data_dir / "fox" / "meta.json").read_text())["tokenizer"] == "gpt2"
    train.main([*TINY, "--dataset=fox", "--max_iters=20", "--eval_interval=20", "--batch_size=4",
                f"--out_dir={tmp_path / 'out'}"])
    res = sample(tmp_path / "out", data_dir, "--start=The quick", "--max_new_tokens=10", "--temperature=0")
    assert res.returncode == 0, res.stderr
    generated = res.stdout[res.stdout.index("The quick") + len("The quick"):].split("---------------")[0]
    assert generated.strip() and set(generated) <= set(text)  # decoded as GPT-2 tokens, of the training text's
