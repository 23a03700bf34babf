"""Click options from an entry point's @dataclass config: one option per field, 1:1.

What a field declares (corpora/config.py: opt) is what its option gets:
  name        --field-name, or metadata["flag"] when the flag differs from the field name
  help        the string literal under the field, on one line; the default is shown by click
  type        the default's type; bool fields get --x/--no-x
  choices     click.Choice (listed in --help); a value outside them is left to the config's own check,
              so a bad value is one `ragft: error: --flag VALUE: ...` line from the same code path as
              a Python caller's
  aliases     old spellings that still work: hidden options that set the same field and print
              `ragft: warning: --old is deprecated, use --new` on stderr
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap

import click

from corpora.config import flag_name

ALIASED = "ragft.aliased"  # ctx.meta key: (command path, field name) -> value given under a deprecated spelling


def field_docs(cls) -> dict[str, str]:
    """The string literal under each dataclass field, whitespace folded to one line (attribute docstrings
    are not kept at run time). Fields inherited from a shared field group are read from that class."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body
        for stmt, nxt in zip(body, body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


class Choices(click.Choice):
    """click.Choice for --help and shell completion; converts to the field's type without rejecting, so the
    config's check (InputError naming the flag) stays the one place a value is refused."""

    def __init__(self, choices, base: click.ParamType):
        super().__init__([str(c) for c in choices])
        self.base = base

    def convert(self, value, param, ctx):
        return self.base.convert(value, param, ctx)


def option_type(f: dataclasses.Field):
    base = click.types.convert_type(None if f.default is None else type(f.default))
    return Choices(f.metadata["choices"], base) if "choices" in f.metadata else base


def warn_alias(field: str, old: str, new: str):
    """Callback of a deprecated spelling: warn once, keep the value for the field's own option."""

    def callback(ctx: click.Context, param: click.Parameter, value):
        if value is not None and not ctx.resilient_parsing:
            click.echo(f"ragft: warning: --{old} is deprecated, use --{new}", err=True)
            ctx.meta.setdefault(ALIASED, {})[ctx.command_path, field] = value
        return value

    return callback


def take_alias(ctx: click.Context, param: click.Parameter, value):
    """Callback of a field that has deprecated spellings: the value given under one of them wins over the
    default. (Click processes the options given on the command line first, in their order, and the others
    after, so the alias has been seen by the time the field's own option falls back to its default.)"""
    key = (ctx.command_path, param.name)
    given = ctx.meta.get(ALIASED, {})
    if key in given and ctx.get_parameter_source(param.name) in (
            click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP):
        return given[key]
    return value


def field_options(f: dataclasses.Field, help_text: str | None) -> list:
    """The click decorators of one field: its option, then one hidden option per deprecated spelling."""
    flag = flag_name(f)
    aliases = [a.lstrip("-") for a in f.metadata.get("aliases", ())]
    # The one-line help states its default ("(default 2)"); click's "[default: 2]" would repeat it.
    show_default = "(default" not in (help_text or "")
    callback = take_alias if aliases else None
    if isinstance(f.default, bool):
        out = [click.option(f"--{flag}/--no-{flag}", f.name, default=f.default, show_default=show_default, help=help_text,
                            callback=callback)]
        out += [click.option(f"--{a}/--no-{a}", f"alias_{a.replace('-', '_')}", default=None, hidden=True,
                             expose_value=False, callback=warn_alias(f.name, a, flag)) for a in aliases]
        return out
    kind = option_type(f)
    out = [click.option(f"--{flag}", f.name, type=kind, default=f.default, show_default=show_default, help=help_text,
                        callback=callback)]
    out += [click.option(f"--{a}", f"alias_{a.replace('-', '_')}", type=kind, default=None, hidden=True,
                         expose_value=False, callback=warn_alias(f.name, a, flag)) for a in aliases]
    return out


def config_options(cls, positional: tuple[str, ...] = ()):
    """Decorator: one click option per field of cls (the fields named in `positional` become arguments)."""
    docs = field_docs(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in positional:
                fn = click.argument(f.name, type=option_type(f))(fn)
                continue
            for add in reversed(field_options(f, docs.get(f.name))):
                fn = add(fn)
        return fn

    return decorate


def pop_config(cls, kw: dict):
    """Take cls's fields out of a command's keyword arguments (commands that combine two configs)."""
    return cls(**{f.name: kw.pop(f.name) for f in dataclasses.fields(cls)})
