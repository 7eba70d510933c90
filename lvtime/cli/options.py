"""The bridge from config fields to command-line options: every command's signature is
generated here from the pydantic models in :mod:`lvtime.config`, so an option's flag,
default, bounds, choices and help are written once, in its field.

A command is a plain function that takes one :class:`Given`: the values the user typed
(not the defaults -- those stay in the models), from which it builds its configs::

    def simulate(given: Given) -> None:
        opts = given.build(SimulateOptions)

    app.command("simulate")(options.command(SimulateOptions)(simulate))

Commands are generated when the app is built (``lvtime.cli.make_app``), from the
models as they are then.

List fields take comma-separated values and may be repeated (``--series 3,4 --series 9``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass
from typing import Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from lvtime.config import flag_of as flags
from lvtime.config import is_argument

try:
    from typer.core import TyperCommand, TyperGroup
except ImportError:  # pragma: no cover
    from typer.main import TyperCommand, TyperGroup  # type: ignore[no-redef]


def _flag_help(option):
    if option is not None:
        option.metavar = ""  # --help is a flag: no "<bool>" beside it
    return option


class Command(TyperCommand):
    """A command whose --help, like every flag, shows no value placeholder."""

    def get_help_option(self, ctx):
        return _flag_help(super().get_help_option(ctx))


class Group(TyperGroup):
    def get_help_option(self, ctx):
        return _flag_help(super().get_help_option(ctx))


try:  # recent typer vendors click; older ones use the click package
    from typer._click.core import ParameterSource
except ImportError:  # pragma: no cover - depends on the installed typer
    from click.core import ParameterSource  # type: ignore[no-redef]

_TYPED = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


@dataclass(frozen=True)
class Source:
    """Where an option comes from: ``model.field``; ``listed`` when a sweep takes a list
    of the field's values."""

    model: type[BaseModel]
    field: str
    listed: bool = False

    @property
    def info(self) -> FieldInfo:
        return self.model.model_fields[self.field]


class Given:
    """The options typed on the command line, by field name (lists already split)."""

    def __init__(self, values: dict[str, Any], sources: dict[str, Source], ctx: typer.Context | None = None):
        self.values = values
        self.sources = sources
        self.ctx = ctx

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def of(self, model: type[BaseModel]) -> dict[str, Any]:
        """The given values of ``model``'s fields."""
        return {k: v for k, v in self.values.items() if k in model.model_fields and not self.sources[k].listed}

    def build(self, model: type[BaseModel], /, **extra: Any):
        """``model`` from its given fields (defaults for the rest) and ``extra``."""
        return build(model, **{**self.of(model), **extra})


def build(model: type[BaseModel], /, **fields: Any):
    """Construct a pydantic model, turning validation errors into one-line usage errors."""
    from pydantic import ValidationError

    from lvtime.errors import UsageError

    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc, message = first["loc"], first["msg"].removeprefix("Value error, ")
        if not loc:
            raise UsageError(message) from None
        info = model.model_fields.get(str(loc[0]))
        where = str(loc[0]).upper() if info is None or is_argument(info) else flags(str(loc[0]), info)[0]
        if len(loc) > 1 and isinstance(loc[1], int):
            where += f" value {loc[1] + 1}"
        got = first.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) and not isinstance(got, bool) else ""
        raise UsageError(f"{where}: {message}{shown}") from None  # in the user's spelling


def _strip_none(annotation: Any) -> Any:
    """``X | None`` -> ``X``; ``Annotated[X, ...]`` -> ``X`` (the field holds the rules)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _strip_none(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return _strip_none(rest[0]) if len(rest) == 1 else annotation
    return annotation


def is_list(annotation: Any) -> bool:
    return typing.get_origin(_strip_none(annotation)) is list


def default_of(info: FieldInfo) -> Any:
    """The field's default as the option shows it (None when made by a factory)."""
    if info.default_factory is not None:
        return None
    return ... if info.default is PydanticUndefined else info.default


def bounds(info: FieldInfo) -> dict[str, Any]:
    """Closed bounds as Typer's min/max (pydantic checks open ones, gt/lt, in one line)."""
    out = {}
    for meta in info.metadata:
        for attr, key in (("ge", "min"), ("le", "max")):
            if getattr(meta, attr, None) is not None:
                out[key] = getattr(meta, attr)
    return out


def _shown_default(info: FieldInfo) -> str | bool:
    if info.default_factory is None:
        return True
    value = info.get_default(call_default_factory=True)
    return ",".join(map(str, value)) if isinstance(value, list | tuple) and value else False


def _rules(info: FieldInfo, kind: Any) -> str:
    """`` [x>=1]`` / `` [full|numeric]``: a listed option's bounds or choices, as Typer
    shows them for single values."""
    limits = bounds(info)
    if typing.get_origin(kind) is typing.Literal:
        return " [" + "|".join(map(str, typing.get_args(kind))) + "]"
    if limits:
        low = f"{limits['min']}<=" if "min" in limits else ""
        high = f"<={limits['max']}" if "max" in limits else ""
        return f" [{low}x{high}]"
    return ""


def parameter(name: str, source: Source) -> inspect.Parameter:
    """The Typer parameter of one field."""
    info = source.info
    kind = _strip_none(info.annotation)
    kw: dict[str, Any] = {"help": info.description or ""}
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if source.listed:  # values are checked by the config, after the parser: say the rules here
        kw["help"] += _rules(info, kind)
    if source.listed or is_list(kind):
        annotation: Any = list[str]
        kw.update(metavar=extra.get("cli_metavar", "V[,V...]"), show_default=_shown_default(info))
        default = None
    else:
        annotation, default = kind, default_of(info)
        kw.update(bounds(info), show_default=_shown_default(info))
        if kind is bool:
            kw["metavar"] = ""  # a flag takes no value
        elif "cli_metavar" in extra:
            kw["metavar"] = extra["cli_metavar"]
    if is_argument(info):
        kw.pop("metavar", None)
        option = typer.Argument(default, **kw)
    else:
        option = typer.Option(default, *flags(name, info), **kw)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def sources(*models: type[BaseModel], skip: tuple[str, ...] = (), lists_of: type[BaseModel] | None = None):
    """Field name -> :class:`Source` for a command: every field of ``models`` (the first
    model that has a name wins), then ``lists_of``'s remaining fields taking lists."""
    found: dict[str, Source] = {}
    for model in models:
        for name in model.model_fields:
            if name not in skip and name not in found:
                found[name] = Source(model, name)
    if lists_of is not None:
        for name, info in lists_of.model_fields.items():
            if name not in skip and name not in found:  # a positional argument (the data) stays one value
                found[name] = Source(lists_of, name, listed=not is_argument(info))
    return found


def split(value: Any, listed: bool) -> Any:
    """``["3,4", "9"]`` -> ``["3", "4", "9"]`` for list options; other values unchanged."""
    if not listed or value is None:
        return value
    return [item.strip() for text in value for item in str(text).split(",") if item.strip()]


def command(*models: type[BaseModel], skip: tuple[str, ...] = (), lists_of: type[BaseModel] | None = None):
    """Decorator: a Typer command whose options are the fields of ``models`` (and, for a
    sweep, ``lists_of``'s fields as lists); the function receives a :class:`Given`."""

    def wrap(func):
        found = sources(*models, skip=skip, lists_of=lists_of)
        ordered = sorted(found, key=lambda n: not is_argument(found[n].info))  # arguments first

        @functools.wraps(func)
        def run(ctx: typer.Context, **kwargs: Any) -> Any:
            given = {}
            for name, value in kwargs.items():
                if ctx.get_parameter_source(name) in _TYPED:
                    info = found[name].info
                    whole = isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("cli_whole")
                    given[name] = split(value, (found[name].listed or is_list(info.annotation)) and not whole)
            return func(Given(given, found, ctx))

        context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        run.__signature__ = inspect.Signature([context, *(parameter(n, found[n]) for n in ordered)])
        run.__annotations__ = {}
        run.lvtime_sources = found  # for tests that check every option against its field
        return run

    return wrap
