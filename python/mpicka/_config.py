"""A session's config as one dict, and the YAML text the library reads.

A config is given as a dict, a path to a YAML file, or YAML text, plus
keyword overrides (the keys of ``mpicka run``'s config, docs/config.md,
without the inputs). The merged dict is handed to the library as YAML
(JSON-style flow values, which YAML reads as written); Python itself only
reads ``batch_size``, ``estimator`` and ``output`` from it, for the batch
plan and for loading the result written.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Union

Config = Union[None, dict, str, os.PathLike]

DEFAULT_BATCH = 256     # batch_size's default in the library's key table (src/config/config.c)
MIN_BATCH = 4           # MK_MIN_BATCH: a smaller tail is left out of a minibatch estimate


def load_config(config: Config, keys: dict) -> dict:
    """``config`` (dict, YAML file or YAML text) merged with ``keys`` (which win)."""
    if config is None:
        base: dict = {}
    elif isinstance(config, dict):
        base = dict(config)
    elif isinstance(config, (str, os.PathLike)):
        base = _yaml(config)
    else:
        raise TypeError(f"config: a dict, a YAML file's path or YAML text, got {type(config).__name__}")
    for key in base:
        if not isinstance(key, str):
            raise TypeError(f"config: keys are strings, got {key!r}")
    base.update({k: v for k, v in keys.items() if v is not None})
    return base


def _yaml(config: Union[str, os.PathLike]) -> dict:
    text = os.fspath(config)
    where = "config text"
    if isinstance(config, os.PathLike) or ("\n" not in text and ":" not in text):
        where = text
        with open(text, encoding="utf-8") as f:
            text = f.read()
    try:
        import yaml   # Debian's python3-yaml; only a config given as YAML needs it
    except ImportError as e:
        raise ImportError("a config given as YAML needs PyYAML (Debian: python3-yaml); or pass a dict") from e
    data = yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a config is a mapping of keys, got {type(data).__name__}")
    return data


def to_yaml(cfg: dict) -> str:
    """The dict as YAML text: each top-level key with its value in JSON
    (flow) form, which quotes every string so that '*' or ':' stay text."""
    lines = []
    for key, value in cfg.items():
        try:
            lines.append(f"{key}: {json.dumps(value)}")
        except TypeError as e:
            raise TypeError(f"config key '{key}': {e}") from e
    return "\n".join(lines) + "\n"


def batch_size(cfg: dict) -> int:
    m = cfg.get("batch_size", DEFAULT_BATCH)
    if not isinstance(m, int) or isinstance(m, bool):
        raise TypeError(f"batch_size: an integer, got {m!r}")
    return m


def keeps_all(cfg: dict) -> bool:
    """The exact estimator takes every example: a short tail is a batch of its own."""
    return cfg.get("estimator") == "exact"


def output(cfg: dict) -> Optional[str]:
    out = cfg.get("output")
    return None if out is None else os.fspath(out)
