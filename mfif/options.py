"""Options dataclasses from text: the one place that types ``KEY=VALUE`` text by the dataclass
fields (``mfif fuse --opt``, ``mfif eval --variant``).

A value is converted to the field's declared type, never guessed from its look: ``bool`` takes
true/false/yes/no/on/off/1/0, ``X | None`` also takes none/null, ``int``/``float``/``str`` as they are.

A renamed field keeps its old name working for a while: the dataclass lists it in a class
attribute ``RENAMED_OPTIONS: ClassVar[dict[str, str]] = {"old": "new"}``; the old name is read as
the new one with a ``FutureWarning`` (``mfif: warning: ...`` on the command line).
"""
from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from typing import Any

from mfif.errors import InputError

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


def field_types(cls) -> dict[str, Any]:
    """``{field name: type}`` of a dataclass, with string annotations resolved."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}


def _members(tp) -> tuple:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def parse_value(tp, text: str, *, name: str = "value"):
    """``text`` -> a value of type ``tp`` (bool, int, float, str, or a union of them with None)."""
    members = _members(tp)
    low = text.strip().lower()
    if type(None) in members and low in _NONE:
        return None
    for member in members:
        if member is bool:
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        elif member in (int, float):
            try:
                return member(text)
            except ValueError:
                pass
        elif member is str:
            return text
    expected = " or ".join(getattr(m, "__name__", str(m)) for m in members)
    raise InputError(f"option {name} expects {expected}, got '{text}'")


def renamed_options(cls, values: dict[str, Any], *, owner: str = "options") -> dict[str, Any]:
    """``values`` with the old names of renamed fields (``cls.RENAMED_OPTIONS``) replaced by the new
    ones, each with a ``FutureWarning``; both names at once is an error."""
    renamed = getattr(cls, "RENAMED_OPTIONS", None) or {}
    out = {}
    for key, value in values.items():
        new = renamed.get(key)
        if new is not None:
            if new in values:
                raise InputError(f"{owner}: give {new} only ({key} is its deprecated name)")
            warnings.warn(f"{owner}: option '{key}' is deprecated, use '{new}' (--opt {new}=...)",
                          FutureWarning, stacklevel=3)
            key = new
        out[key] = value
    return out


def parse_options(cls, texts: dict[str, str], *, owner: str = "options") -> dict[str, Any]:
    """``{"key": "text"}`` -> ``{"key": typed value}`` for the dataclass ``cls`` (unknown keys are an
    error that lists the valid ones; ``-`` in a key reads as ``_``; a renamed option's old name
    reads as the new one, with a warning)."""
    types_ = field_types(cls)
    values = {}
    texts = renamed_options(cls, {key.strip().replace("-", "_"): text for key, text in texts.items()}, owner=owner)
    for key, text in texts.items():
        if key not in types_:
            raise InputError(f"{owner} has no option {key}; valid options: {', '.join(sorted(types_)) or '(none)'}")
        values[key] = parse_value(types_[key], text, name=key)
    return values


def split_pairs(items, *, what: str = "--opt") -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> ``{"KEY": "VALUE"}`` (text, typed later by :func:`parse_options`)."""
    pairs = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{what} expects KEY=VALUE, got '{item}'")
        pairs[key.strip()] = value.strip()
    return pairs
