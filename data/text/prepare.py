"""
Your own text as a dataset: train.bin and val.bin (uint16 token ids) and meta.json, in characters or GPT-2 BPE.

    python data/text/prepare.py --input my.txt                    # data/my/, character level
    python data/text/prepare.py --input a.txt --input b.txt --name ab --tokenizer gpt2
    python data/text/prepare.py --input books/ --name books       # every .txt file under books/, in name order
    python train.py config/shakespeare_char_cpu_mingru.py --dataset=my --out_dir=out-my
    python sample.py --out_dir=out-my                             # decodes with the tokenizer meta.json names

The files are read in chunks, twice: once to check them (a missing, empty, binary or undecodable file is a one-line
error before anything is written), to hash them and to count their characters (and, at the character level, to
collect the vocabulary), and once to encode them. Memory does not grow with the text (BPE only needs a space or a
newline now and then, where it can cut). Files are joined in order, with a newline after any that does not end in
one. Newlines are read as Python's text mode reads them: \\r\\n and \\r become \\n. The split is nanoGPT's: the
last val_fraction of the text, counted in characters, is val, and the rest is train. Each split is encoded on its
own. BPE never merges across that cut. The files are written to temp files and renamed into place at the end,
meta.json last. An interrupted run leaves the old dataset, if any, as it was. meta.json records a hash of the input,
so a second run on the same input does nothing. Other input under the same name is refused unless --force is given.

The Shakespeare scripts (data/shakespeare_char/, data/shakespeare/) prepare tiny Shakespeare with this code
(prepare_splits and Staging).
"""
import argparse
import codecs
import hashlib
import io
import json
import os
import re
import signal
import sys
import tempfile
import threading

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS_DIR = os.path.dirname(HERE)  # data/: every dataset's prepare.py
CHUNK_BYTES = 8 << 20  # read this much of a file at a time
BPE_BATCH_CHARS = 8 << 20  # encode this much text per call of tiktoken's batch encoder
GPT2_VOCAB_SIZE = 50304  # GPT-2's 50257 tokens, padded to a multiple of 64 for speed
MAX_CHARS = 1 << 16  # uint16 token ids: 0..65,535
TEMP_PREFIX = ".prepare-"  # Staging's temp files; a run killed outright leaves them, the next run removes them
PROGRESS_BYTES = 64 << 20  # show a progress bar on inputs at least this large


class TextError(ValueError):
    """Input this script cannot prepare; the message is one line that says what to do."""


def dataset_dir(name):
    """data/NAME, or $MINRNN_DATA_DIR/NAME where that is set, as common.dataset_dir (not imported: it loads torch)."""
    return os.path.join(os.environ.get("MINRNN_DATA_DIR") or SCRIPTS_DIR, name)


# ----------------------------------------------------------------------------- reading

def input_files(inputs):
    """The files that --input names, in order: a file itself, a folder its .txt files (recursively, by path)."""
    files = []
    for path in inputs:
        if os.path.isdir(path):
            found = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                           if f.endswith(".txt"))
            if not found:
                raise TextError(f"the folder {path} holds no .txt files")
            files += found
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise TextError(f"no such file or folder: {path}")
    for path in files:
        if os.path.getsize(path) == 0:
            raise TextError(f"{path} is empty; give a file with text in it")
    return files


def read_text(files, encoding="utf-8", hasher=None, progress=None):
    """The files' text as a stream of str chunks (about CHUNK_BYTES each). Raises TextError on a binary file or
    one that does not decode. hasher, if given, is fed each file's length and bytes."""
    nul_is_text = b"\0" in "\n".encode(encoding)  # UTF-16 and UTF-32 put NUL bytes in every ASCII character
    for i, path in enumerate(files):
        decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder(encoding)(), translate=True)
        offset, last = 0, ""
        if hasher is not None:
            hasher.update(os.path.getsize(path).to_bytes(8, "little"))
        with open(path, "rb") as f:
            while True:
                raw = f.read(CHUNK_BYTES)
                if hasher is not None:
                    hasher.update(raw)
                nul = -1 if nul_is_text else raw.find(b"\0")
                if nul >= 0:
                    raise TextError(f"{path} looks binary (a NUL byte at offset {offset + nul:,}); give a text file")
                pending = len(decoder.getstate()[0])  # bytes of a character cut by the previous chunk
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as e:
                    at = offset - pending + e.start
                    raise TextError(f"{path} is not valid {encoding}: byte 0x{e.object[e.start]:02x} at offset "
                                    f"{at:,} ({e.reason}); if the file is in another encoding, name it with "
                                    f"--encoding (e.g. --encoding latin-1 or cp1252)") from None
                if nul_is_text and "\0" in text:
                    raise TextError(f"{path} looks binary (it holds NUL characters); give a text file")
                offset += len(raw)
                if progress is not None:
                    progress.update(len(raw))
                if text:
                    last = text[-1]
                    yield text
                if not raw:
                    break
        if i < len(files) - 1 and last != "\n":
            yield "\n"  # the next file starts on a line of its own


def codepoints(text):
    """text's characters as an array of code points: uint8 for ASCII (a copy of its bytes), else uint32."""
    if text.isascii():  # O(1): Python keeps the flag
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def scan(files, encoding="utf-8", chars=True, progress=False):
    """The first pass: (characters in all, the sorted character set or None, sha256 of the input). At the character
    level the set is collected with a table of all code points, one NumPy assignment per chunk."""
    hasher = hashlib.sha256()
    present = np.zeros(0x110000, dtype=bool) if chars else None
    n = 0
    with progress_bar(files, progress, "checking") as bar:
        for text in read_text(files, encoding, hasher, bar):
            n += len(text)
            if chars:
                present[codepoints(text)] = True
    vocab = [chr(c) for c in np.flatnonzero(present)] if chars else None  # by code point, as sorted(set(text))
    return n, vocab, hasher.hexdigest()


def progress_bar(files, progress, desc):
    """A tqdm bar over the input's bytes, on a terminal and for long inputs only; else a stand-in that does nothing."""
    total = sum(os.path.getsize(f) for f in files)
    if not (progress and total >= PROGRESS_BYTES and sys.stderr.isatty() and not os.environ.get("CI")):
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=False)


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- encoding

def gpt2_encoding():
    """tiktoken's GPT-2 BPE. Its failures are an ImportError or an OSError, which common.prepare_dataset reports."""
    try:
        import tiktoken
    except ImportError:
        raise ImportError("GPT-2 BPE needs tiktoken: pip install tiktoken") from None
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as e:  # tiktoken downloads the BPE files once, then reads its cache
        raise OSError(f"could not load GPT-2's BPE files ({type(e).__name__}); tiktoken downloads them once, and "
                      f"offline reads them from $TIKTOKEN_CACHE_DIR") from None


def safe_cut(text, end):
    """The last position p < end where text can be cut without changing its GPT-2 BPE tokens, or 0 if none: text[p]
    is a newline or a space and text[p - 1] is not whitespace (str.isspace() holds for every character that the
    regex's \\s matches, and a few more). GPT-2's pre-tokenizer regex never joins a non-space character to the
    whitespace after it, and text[:p], ending in a non-space, leaves its `\\s+(?!\\S)` lookahead nothing to see past
    the cut (a cut inside a whitespace run would: "\\n\\n" before a word is two tokens, at the end of a chunk one).
    Text with no such place (no space or newline after a non-space) is buffered until there is one."""
    for sep in "\n ":
        p = text.rfind(sep, 1, end)
        while p > 0 and text[p - 1].isspace():
            p = text.rfind(sep, 1, p)
        if p > 0:
            return p
    return 0


class SplitWriter:
    """Appends one split's tokens to its .bin file as the text arrives: characters through a lookup table, BPE in
    batches through tiktoken's batch encoder on every core. write(text), then close() -> tokens written."""

    def __init__(self, path, chars=None, enc=None):
        self.f = open(path, "wb")
        self.enc, self.count, self.buffer, self.buffered = enc, 0, [], 0
        if chars is not None:
            self.lut = np.zeros(0x110000, dtype=np.uint16)  # code point -> token id
            self.lut[[ord(c) for c in chars]] = np.arange(len(chars), dtype=np.uint16)
        self.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def write(self, text):
        if self.enc is None:
            self._write(self.lut[codepoints(text)])
            return
        self.buffer.append(text)
        self.buffered += len(text)
        if self.buffered >= BPE_BATCH_CHARS:
            self._encode(final=False)

    def close(self):
        if self.enc is not None:
            self._encode(final=True)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return self.count

    def _encode(self, final):
        text = "".join(self.buffer)
        end = len(text) if final else safe_cut(text, len(text))
        if end == 0 and not final:
            self.buffer = [text]  # no place to cut yet (no space or newline after a non-space): read on
            return
        # one piece per thread and then some, each cut where the tokens cannot change, so the batch encodes in parallel
        pieces, start = [], 0
        for left in range(2 * self.threads - 1, 0, -1):  # pieces still to cut after this one
            cut = safe_cut(text, start + (end - start) // (left + 1))
            if cut > start:
                pieces.append(text[start:cut])
                start = cut
        pieces.append(text[start:end])
        for ids in self.enc.encode_ordinary_batch(pieces, num_threads=self.threads):
            self._write(np.array(ids, dtype=np.uint16))
        self.buffer, self.buffered = [text[end:]], len(text) - end

    def _write(self, ids):
        self.f.write(ids.tobytes())
        self.count += len(ids)


def prepare_splits(files, staging, tokenizer="char", val_fraction=0.1, encoding="utf-8", progress=True,
                   scanned=None):
    """Encode files into staging's train.bin and val.bin: the last val_fraction of the characters is val. Returns
    meta (vocab_size, chars at the character level, train_tokens, val_tokens, in the Shakespeare scripts' order)
    and the input's sha256. scanned: scan()'s result, where the caller has it already."""
    enc = gpt2_encoding() if tokenizer == "gpt2" else None
    n, chars, digest = scanned or scan(files, encoding, chars=tokenizer == "char", progress=progress)
    if chars is not None and len(chars) > MAX_CHARS:
        raise TextError(f"the text has {len(chars):,} distinct characters, more than the {MAX_CHARS:,} that uint16 "
                        f"token ids hold; use --tokenizer gpt2")
    n_train = int(n * (1 - val_fraction))  # 1 - 0.1 is exactly 0.9: the Shakespeare scripts' int(n * 0.9)
    if chars is not None:
        check_split_sizes(n_train, n - n_train, val_fraction)  # a token per character: known before encoding
    writers = {split: SplitWriter(staging.path(f"{split}.bin"), chars, enc) for split in ("train", "val")}
    position = 0
    with progress_bar(files, progress, "encoding") as bar:
        for text in read_text(files, encoding, progress=bar):
            if position < n_train < position + len(text):  # the cut falls in this chunk
                writers["train"].write(text[:n_train - position])
                writers["val"].write(text[n_train - position:])
            else:
                writers["train" if position < n_train else "val"].write(text)
            position += len(text)
    counts = {split: w.close() for split, w in writers.items()}
    check_split_sizes(counts["train"], counts["val"], val_fraction)
    meta = {"tokenizer": "gpt2", "vocab_size": GPT2_VOCAB_SIZE} if enc else {"vocab_size": len(chars), "chars": chars}
    meta.update(train_tokens=counts["train"], val_tokens=counts["val"])
    return meta, digest


def check_split_sizes(train_tokens, val_tokens, val_fraction):
    # Batches draws windows of block_size + 1 tokens, and block_size is at least 1
    for split, count, advice in [("train", train_tokens, "a smaller"), ("val", val_tokens, "a larger")]:
        if count < 2:
            raise TextError(f"the {split} split would hold {count} token{'s' * (count != 1)} (of "
                            f"{train_tokens + val_tokens:,}, with --val_fraction {val_fraction}), too few for any "
                            f"block_size: it needs at least 2; give more text or {advice} --val_fraction")


# ----------------------------------------------------------------------------- writing

class Staging:
    """Temp files in out_dir, renamed over their final names only by commit(), meta.json last. An error or a Ctrl-C
    before then removes them, so the dataset already there, if any, stays as it was."""

    def __init__(self, out_dir):
        self.out_dir, self.temps, self.created = out_dir, {}, []

    def __enter__(self):
        missing = os.path.abspath(self.out_dir)
        while not os.path.exists(missing):  # the folders this makes, deepest first, to remove again on failure
            self.created.append(missing)
            missing = os.path.dirname(missing)
        os.makedirs(self.out_dir, exist_ok=True)
        for f in os.listdir(self.out_dir):  # left by a run killed outright
            if f.startswith(TEMP_PREFIX):
                os.remove(os.path.join(self.out_dir, f))
        return self

    def path(self, name):
        """A temp file that commit() renames to out_dir/name."""
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{name}-", dir=self.out_dir)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a dataset gets the usual mode
        self.temps[name] = tmp
        return tmp

    def commit(self, meta, stale=()):
        """Write meta.json and move every file into place, meta.json last; remove the stale files (of a dataset
        being replaced) before it."""
        with open(self.path("meta.json"), "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None  # no Ctrl-C mid-way
        try:
            for name in [n for n in self.temps if n != "meta.json"]:
                os.replace(self.temps.pop(name), os.path.join(self.out_dir, name))
            for name in stale:
                if os.path.exists(os.path.join(self.out_dir, name)):
                    os.remove(os.path.join(self.out_dir, name))
            os.replace(self.temps.pop("meta.json"), os.path.join(self.out_dir, "meta.json"))
        finally:
            if main_thread:
                signal.signal(signal.SIGINT, previous)

    def __exit__(self, *exc):
        for tmp in self.temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        for directory in self.created:
            if os.listdir(directory):
                break
            os.rmdir(directory)
        return False


# ----------------------------------------------------------------------------- the command

def prepare(input_path=None, out_dir=None, tokenizer="char", val_fraction=0.1, encoding="utf-8", name=None,
            force=False, progress=True):
    """Prepare input_path (a file or folder, or a list of them) into out_dir (default data/NAME, NAME defaulting to
    the first input's stem). Returns meta. Raises TextError on bad input, leaving out_dir as it was."""
    if input_path is None:  # train.py --dataset=text lands here
        raise FileNotFoundError("data/text/ prepares your own text: python data/text/prepare.py --input FILE "
                                "--name NAME, then python train.py --dataset=NAME")
    inputs = [input_path] if isinstance(input_path, (str, os.PathLike)) else list(input_path)
    if tokenizer not in ("char", "gpt2"):
        raise TextError(f"unknown tokenizer {tokenizer!r}; use char or gpt2")
    if not 0 < val_fraction < 1:
        raise TextError(f"--val_fraction must be between 0 and 1; got {val_fraction}")
    try:
        encoding = codecs.lookup(encoding).name
    except LookupError:
        raise TextError(f"unknown encoding {encoding!r}; e.g. utf-8, utf-8-sig, latin-1, cp1252, utf-16") from None
    files = input_files(inputs)
    if out_dir is None:
        name = name or os.path.splitext(os.path.basename(os.path.normpath(inputs[0])))[0]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise TextError(f"{name!r} cannot name a dataset; give --name with letters, digits, '_', '.' or '-'")
        if name == "selective_copying" or os.path.exists(os.path.join(SCRIPTS_DIR, name, "prepare.py")):
            raise TextError(f"{name!r} is one of this project's datasets (data/{name}/); choose another --name")
        out_dir = dataset_dir(name)
    if tokenizer == "gpt2":
        gpt2_encoding()  # fails now, not after the first pass
    scanned = scan(files, encoding, chars=tokenizer == "char", progress=progress)
    source = {"sha256": scanned[2], "tokenizer": tokenizer, "val_fraction": val_fraction, "encoding": encoding}
    old, complete = existing(out_dir)
    if old is not None and not force:
        if old.get("input", {}).get("source") == source and complete:
            print(f"{out_dir} is already prepared from this input (sha256 {source['sha256'][:12]}...); nothing to do")
            return old
        raise TextError(clash(out_dir, old, source))
    with Staging(out_dir) as staging:
        meta, _ = prepare_splits(files, staging, tokenizer, val_fraction, encoding, progress, scanned)
        meta = {"tokenizer": tokenizer, **meta, "input": {"source": source, "files": inputs,
                                                          "bytes": sum(os.path.getsize(f) for f in files)}}
        staging.commit(meta, stale=["test.bin"])  # a replaced dataset's test split is not this text's
    vocab = f"{len(meta['chars']):,} characters" if tokenizer == "char" else "GPT-2 BPE"
    print(f"{len(files)} file{'s' * (len(files) > 1)}, {meta['input']['bytes']:,} bytes: train "
          f"{meta['train_tokens']:,} and val {meta['val_tokens']:,} tokens ({vocab}) in {out_dir}")
    return meta


def existing(out_dir):
    """The dataset already in out_dir: (its meta.json, whether its .bin files match it); ({}, False) for .bin files
    without a readable meta.json, (None, False) for no dataset."""
    bins = {s: os.path.join(out_dir, f"{s}.bin") for s in ("train", "val")}
    path = os.path.join(out_dir, "meta.json")
    if not os.path.exists(path):
        return ({} if any(os.path.exists(p) for p in bins.values()) else None), False
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return {}, False
    return meta, all(os.path.exists(p) and os.path.getsize(p) == 2 * meta.get(f"{s}_tokens", -1)
                     for s, p in bins.items())


def clash(out_dir, old, source):
    if "input" not in old:
        what = "by something other than this script"
    elif old["input"].get("source", {}).get("sha256") == source["sha256"]:
        settings = {k: v for k, v in old["input"]["source"].items() if k != "sha256" and source[k] != v}
        what = "from this input with other settings (" + ", ".join(f"{k} {v}, not {source[k]}" for k, v in
                                                                settings.items()) + ")" \
            if settings else "from this input, but its .bin files do not match its meta.json"
    else:
        files = old["input"].get("files", [])
        what = f"from other input ({', '.join(map(str, files[:3]))}{', ...' if len(files) > 3 else ''})"
    return f"{out_dir} already holds a dataset, prepared {what}; add --force to replace it, or choose another --name"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", action="append", required=True, metavar="PATH",
                        help="a text file, or a folder of .txt files; give it again for more")
    parser.add_argument("--name", help="the dataset: data/NAME/, and --dataset=NAME in train.py (default: the "
                        "first input's name without its extension)")
    parser.add_argument("--tokenizer", choices=["char", "gpt2"], default="char",
                        help="char: one token per character, the text's own vocabulary; gpt2: GPT-2's BPE (tiktoken)")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="the last fraction of the text, held out")
    parser.add_argument("--encoding", default="utf-8", help="the files' text encoding (default utf-8)")
    parser.add_argument("--force", action="store_true", help="replace a dataset of that name made from other input")
    args = parser.parse_args(argv)
    try:
        prepare(args.input, tokenizer=args.tokenizer, val_fraction=args.val_fraction, encoding=args.encoding,
                name=args.name, force=args.force)
    except (TextError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a full disk, a folder it may not write to, no BPE files offline
        print(f"error: {e.filename}: {e.strerror}" if e.filename else f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted; the dataset, if there was one, is as it was", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
