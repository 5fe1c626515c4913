"""
Configs are dataclasses; this fills one from a config file and --key=value overrides, checking every key.

    python train.py config/shakespeare_char_mingru.py --batch_size=32 --learning_rate=3e-4

A config file is plain Python assignments. It runs in a namespace of its own (never in the script's globals),
and every name it defines must be a field of the config: a typo such as `n_layers = 4` is an error, not a silent
no-op. Overrides are Python literals (strings may be written bare: --mixer=mingru). An int is accepted for a float;
every other type mismatch is an error that names the key, the expected type and the value given.
"""
import ast
import dataclasses
import difflib
import inspect
import re
import types
import typing


class ConfigError(ValueError):
    """A bad config key or value; scripts print it as one line and exit with status 2."""


def _allowed_types(annotation):
    """The concrete types a field accepts: `float | None` -> (float, NoneType)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing))  # annotations written as strings, e.g. "int | None"
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(t for arg in args for t in _allowed_types(arg))
    return (type(None),) if annotation is None else (annotation,)


def _check(cls, key, value):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(sorted(fields))}")
    allowed = _allowed_types(fields[key].type)
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # 3 where 3.0 is expected is fine
    # bool is an int subclass, but True is no batch size
    if not isinstance(value, allowed) or isinstance(value, bool) and bool not in allowed:
        names = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
        raise ConfigError(f"config key {key!r} expects {names}, got {value!r}")
    return value


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word: --mixer=mingru


def parse_config(cls, argv):
    """argv: [CONFIG_FILE] [--key=value ...]. Returns cls(...) or raises ConfigError."""
    values, wants_help = {}, False
    for arg in argv:
        if arg in ("-h", "--help"):
            wants_help = True
            continue
        if not arg.startswith("--"):
            values.update(read_config_file(cls, arg))
            continue
        key, eq, text = arg[2:].partition("=")
        if not eq:
            raise ConfigError(f"override {arg!r} must look like --key=value")
        values[key] = _check(cls, key, _parse_value(text))
    if wants_help:  # after the config file and the overrides, so that it shows the values they set
        print(describe(cls, values))
        raise SystemExit(0)
    try:
        return cls(**values)
    except ValueError as e:  # a dataclass's own __post_init__ checks
        raise ConfigError(str(e)) from None


def read_config_file(cls, path):
    try:
        with open(path) as f:
            source = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path!r}: {e.strerror}") from None
    namespace = {}
    try:
        exec(compile(source, path, "exec"), namespace)
    except Exception as e:
        raise ConfigError(f"config file {path!r} failed to run: {type(e).__name__}: {e}") from None
    values = {}
    for key, value in namespace.items():
        if key.startswith("_") or isinstance(value, types.ModuleType):
            continue
        try:
            values[key] = _check(cls, key, value)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return values


def field_docs(*classes):
    """Each field's one line of help: its trailing comment in the class's source, else the comment line heading its
    group (# AdamW), from the first class that has the field."""
    docs = {}
    for klass in classes:
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):  # a class made at run time (dataclasses.make_dataclass) has no source
            continue
        heading, in_comment = "", False
        for line in map(str.strip, lines):
            if line.startswith("#"):  # a block of comment lines: its first line heads the group
                heading = heading if in_comment else line.lstrip("# ")
                in_comment = True
                continue
            in_comment = False
            if match := re.match(r"(\w+)\s*:[^=]*=.*?(?:#\s*(.*))?$", line):
                docs.setdefault(match[1], match[2] or heading)
            elif not line:
                heading = ""
    return docs


def describe(cls, values=None):
    """Every key with the value it would have (the default, or what values set) and its one line of help. The help
    comes from the comments in the config classes' source: cls's bases, and the classes in cls.help_from."""
    docs = field_docs(*cls.__mro__, *getattr(cls, "help_from", ()))
    values = values or {}
    lines = [f"{len(dataclasses.fields(cls))} keys, with their values after the config file and overrides "
             f"(set one with --key=value):"]
    for f in dataclasses.fields(cls):
        value = values[f.name] if f.name in values else f.default if f.default is not dataclasses.MISSING \
            else f.default_factory()
        setting = f"  {f.name} = {value!r}"
        lines.append(f"{setting:<44} {docs.get(f.name, '')}".rstrip())
    return "\n".join(lines)
