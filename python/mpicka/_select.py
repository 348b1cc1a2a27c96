"""Which modules an export writes, and which option applies to which layer.

``layers`` names modules as ``model.named_modules()`` does, or globs over
those names (``*`` and ``?`` stay within one dotted part, ``**`` crosses
dots, ``[...]`` is a class). The per-layer options of the exporter (pool,
token, output, transform) take either one value for every layer or a dict
from names or patterns to values, resolved here once per layer.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Sequence, Union

import torch

IDS = "ids"

Layers = Union[None, str, Sequence[str]]


def pattern_regex(pattern: str) -> "re.Pattern[str]":
    """Glob over dotted module names: ``*`` and ``?`` stay within one name
    part (as mpicka's ``*`` stays within one path level), ``**`` crosses dots,
    ``[...]`` is a character class (``[!...]`` negated)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[" and _class_end(pattern, i) > 0:
            end = _class_end(pattern, i)
            body = pattern[i + 1:end]
            neg = body.startswith("!")
            body = re.escape(body[1:] if neg else body).replace(r"\-", "-")
            out.append(f"[^.{body}]" if neg else f"[{body}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _class_end(pattern: str, i: int) -> int:
    """Index of the ']' closing the class opened at i, or -1 (a literal '[')."""
    j = i + 1
    if pattern[j:j + 1] == "!":
        j += 1
    if pattern[j:j + 1] == "]":
        j += 1
    return pattern.find("]", j)


def is_pattern(s: str) -> bool:
    return any(c in s for c in "*?[")


def select_modules(model: torch.nn.Module, layers: Layers) -> tuple[list[str], bool]:
    """Resolve ``layers`` to module names of ``model``.

    Returns ``(names, explicit)``: the selected names (in ``named_modules()``
    order; the file's order is the forward order, decided when the model
    runs) and whether they were chosen explicitly (names or patterns) rather
    than by default (``None``: every leaf module). A name that does not exist
    or a pattern that matches nothing raises ``ValueError`` listing the
    closest names that do exist.
    """
    names = [n for n, _ in model.named_modules() if n]
    if layers is None:
        leaves = [n for n, m in model.named_modules() if n and next(m.children(), None) is None]
        if not leaves:
            raise ValueError(f"{type(model).__name__} has no submodules to export; name the layers")
        return _storable(leaves), False
    if isinstance(layers, str):
        layers = [layers]
    chosen: set[str] = set()
    for entry in layers:
        if not isinstance(entry, str):
            raise TypeError(f"layers: expected module names or patterns (str), got {entry!r}")
        if not is_pattern(entry):
            if entry not in names:
                raise ValueError(f"layers: the model has no module '{entry}'" + closest(entry, names))
            chosen.add(entry)
            continue
        rx = pattern_regex(entry)
        hits = [n for n in names if rx.match(n)]
        if not hits:
            raise ValueError(f"layers: pattern '{entry}' matches no module name ('*' does not cross "
                             f"dots; '**' does)" + closest(entry, names))
        chosen.update(hits)
    if IDS in chosen:
        raise ValueError(f"layers: a module named '{IDS}' would collide with the /{IDS} dataset")
    return _storable([n for n in names if n in chosen]), True


def _storable(names: list[str]) -> list[str]:
    """Refuses names that cannot be one HDF5 dataset at the root: '/' nests
    groups (and collides with a module of the prefix's name), NUL ends the
    name early. Not escaped: the file promises named_modules()'s names, and
    mpicka's layer patterns would have to spell the escape."""
    for name in names:
        bad = "/" if "/" in name else "NUL" if "\0" in name else None
        if bad:
            raise ValueError(f"layers: module '{name}' has a {bad} in its name, which an HDF5 dataset name "
                             f"cannot hold; rename it (the key of its ModuleDict or add_module name) or "
                             f"select other modules")
    return names


def closest(name: str, names: list[str]) -> str:
    stem = name.replace("*", "").replace("?", "")
    close = difflib.get_close_matches(stem, names, n=5, cutoff=0.5)
    if close:
        return "; closest: " + ", ".join(close)
    return "; modules: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")


def per_layer(option: str, value: Any, names: list[str]) -> dict[str, Any]:
    """The value of a per-layer option for each of ``names``.

    ``value`` is one value for every layer, or a dict from module names or
    patterns to values: an exact name wins over patterns, else the first
    pattern (in the dict's order) that matches; layers matched by none get
    ``None``. A key that matches none of the selected layers is a
    ``ValueError`` (a typo would otherwise leave layers unreduced).
    """
    if not isinstance(value, dict):
        return {n: value for n in names}
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{option}: keys are module names or patterns (str), got {key!r}")
        if key in names or (is_pattern(key) and any(pattern_regex(key).match(n) for n in names)):
            continue
        raise ValueError(f"{option}: '{key}' names none of the exported layers" + closest(key, names))
    out = {}
    for n in names:
        if n in value:
            out[n] = value[n]
            continue
        out[n] = next((v for k, v in value.items() if is_pattern(k) and pattern_regex(k).match(n)), None)
    return out
