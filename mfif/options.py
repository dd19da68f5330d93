"""Options dataclasses from text: the one place that types ``KEY=VALUE`` text by the dataclass
fields (``mfif fuse --opt``, ``mfif eval --variant``).

A value is converted to the field's declared type, never guessed from its look: ``bool`` takes
true/false/yes/no/on/off/1/0, ``X | None`` also takes none/null, ``int``/``float``/``str`` as they are.
"""
from __future__ import annotations

import dataclasses
import types
import typing
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


def parse_options(cls, texts: dict[str, str], *, owner: str = "options") -> dict[str, Any]:
    """``{"key": "text"}`` -> ``{"key": typed value}`` for the dataclass ``cls`` (unknown keys are an
    error that lists the valid ones; ``-`` in a key reads as ``_``)."""
    types_ = field_types(cls)
    values = {}
    for key, text in texts.items():
        key = key.strip().replace("-", "_")
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
