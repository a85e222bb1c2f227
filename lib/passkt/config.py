"""Params loading and validation against a notebook's ``parameters`` cell.

params.yaml has one section per stage (``00_data_prep: {...}``) plus shared top-level keys (``seed``,
``profile``, ``sampling``). A stage's notebook declares, in its cell tagged ``parameters``, every name it uses
with a literal default; that cell is the schema. A stage receives the names of its cell taken from its own
section first, then from the shared keys. Anything unknown, missing or of the wrong type is an error that names
the key and the stage, raised before any compute.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """Bad params: the message is one line naming the file, stage and key."""


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of stage sections and shared keys")
    return data


def parameters_cell(notebook: str | Path) -> dict[str, Any]:
    """Names and literal defaults of a notebook's cell tagged ``parameters``."""
    notebook = Path(notebook)
    nb = json.loads(notebook.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(f"{notebook}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    src = "".join(cells[0]["source"])
    out: dict[str, Any] = {}
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ConfigError(f"{notebook}: parameters cell may hold only `name = literal` lines (line {node.lineno})")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(
                f"{notebook}: parameter {node.targets[0].id!r} must have a literal default (line {node.lineno})"
            ) from None
    return out


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def check_type(stage: str, key: str, value: Any, default: Any) -> None:
    """Value must have the default's type (an int is accepted where a float is declared; None = any)."""
    if default is None:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(
            f"stage {stage}: key {key!r} should be {_type_name(default)} (like the notebook default "
            f"{default!r}), got {_type_name(value)} {value!r}"
        )


def stage_params(params: dict, stage: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve a stage's parameters from params.yaml content, checked against the notebook schema."""
    if stage not in params:
        raise ConfigError(f"stage {stage}: no section {stage!r} in params")
    section = params[stage] or {}
    if not isinstance(section, dict):
        raise ConfigError(f"stage {stage}: section must be a mapping, got {_type_name(section)}")
    unknown = sorted(set(section) - set(schema))
    if unknown:
        raise ConfigError(f"stage {stage}: unknown key {unknown[0]!r} (not in the notebook's parameters cell)")
    stage_names = {k for k in params if k[:2].isdigit()}
    shared = {k: v for k, v in params.items() if k not in stage_names}
    out: dict[str, Any] = {}
    for key, default in schema.items():
        if key in section:
            value = section[key]
        elif key in shared:
            value = shared[key]
        else:
            raise ConfigError(f"stage {stage}: missing key {key!r} (neither in section {stage!r} nor shared)")
        check_type(stage, key, value, default)
        out[key] = value
    return out


def apply_overrides(stage: str, resolved: dict, schema: dict, overrides: list[str]) -> dict:
    """``key=value`` overrides (value parsed as YAML), validated like params.yaml values."""
    out = dict(resolved)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"stage {stage}: override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        if key not in schema:
            raise ConfigError(f"stage {stage}: unknown key {key!r} in --set")
        value = yaml.safe_load(raw)
        check_type(stage, key, value, schema[key])
        out[key] = value
    return out


def require_in(name: str, value: Any, allowed) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a one-line ConfigError naming the parameter.

    Used where a notebook parameter must be a point of a grid the data was sampled on (a search budget, a
    temperature): an absent value is an error, never silently replaced by another grid point.
    """
    allowed = [a.item() if hasattr(a, "item") else a for a in allowed]  # numpy scalars print as np.int64(5)
    if value not in allowed:
        raise ConfigError(f"parameter {name!r} = {value!r} is not in the grid {allowed}")
    return value
