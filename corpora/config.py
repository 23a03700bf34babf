"""Config fields with their checks, shared by every entry point's @dataclass config.

A field declared with `opt(default, ...)` carries its allowed values as metadata; `check(cfg)`, called from
each config's __post_init__, raises InputError for the first value outside them, so a bad option stops the
command before any model loads or any folder is made. The CLI (cli/options.py) reads the same metadata for
choices, flag names and deprecated aliases.

    top_k: int = opt(2, min=0)
    \"\"\"Chunks put into the prompt of retrieval systems (default 2).\"\"\"
"""

from __future__ import annotations

import dataclasses
import math

from corpora.errors import InputError


def opt(default, *, choices=None, min=None, max=None, above=None, below=None, flag: str = "",
        aliases: tuple[str, ...] = ()):
    """A dataclass field with checks. min/max: inclusive bounds; above/below: exclusive bounds;
    choices: allowed values; flag: the CLI flag when it differs from the field name (without --);
    aliases: old flag spellings still accepted (they warn)."""
    meta = {k: v for k, v in (("choices", tuple(choices) if choices is not None else None), ("min", min),
                              ("max", max), ("above", above), ("below", below)) if v is not None}
    if flag:
        meta["flag"] = flag
    if aliases:
        meta["aliases"] = tuple(aliases)
    return dataclasses.field(default=default, metadata=meta)


def flag_name(f: dataclasses.Field) -> str:
    """The CLI flag of a field, without the leading dashes."""
    return f.metadata.get("flag") or f.name.replace("_", "-")


def problem(f: dataclasses.Field, value) -> str | None:
    """What is wrong with `value` for field `f` ('' / None when nothing)."""
    m = f.metadata
    if isinstance(value, float) and math.isnan(value) and any(k in m for k in ("min", "max", "above", "below")):
        return "is not a number"
    if "choices" in m and value not in m["choices"]:
        return f"must be one of {', '.join(str(c) for c in m['choices'])}"
    if "min" in m and value < m["min"]:
        return f"must be at least {m['min']}"
    if "max" in m and value > m["max"]:
        return f"must be at most {m['max']}"
    if "above" in m and not value > m["above"]:
        return f"must be above {m['above']}"
    if "below" in m and not value < m["below"]:
        return f"must be below {m['below']}"
    if isinstance(value, float) and math.isinf(value) and m:
        return "must be finite"
    return None


def check(cfg) -> None:
    """Raise InputError naming the flag for the first field of `cfg` whose value breaks its metadata."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata and not isinstance(value, bool):
            why = problem(f, value)
            if why:
                raise InputError(f"--{flag_name(f)} {value!r}: {why}")


def known(cfg, *names: str) -> None:
    """For the choice fields `names` of cfg: InputError "unknown <name> 'VALUE': choose one of a, b, c", the
    wording these options had before their checks became metadata (users and tests match it). Call it just
    before check(cfg)."""
    for name in names:
        choices, value = cfg.__dataclass_fields__[name].metadata["choices"], getattr(cfg, name)
        if value not in choices:
            raise InputError(f"unknown {name.replace('_', ' ')} {value!r}: choose one of "
                             f"{', '.join(str(c) for c in choices)}")
