"""Tools from Python functions: `@tool` derives a JSON schema from type hints; `ToolSet` groups."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, get_type_hints, overload

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic_core import to_jsonable_python

from tools.errors import ToolArgumentError, ToolCallFailed, ToolError, ToolNotFound
from tools.wire import ToolSpec

__all__ = ["Tool", "ToolSet", "tool"]

P = ParamSpec("P")
R = TypeVar("R")

_logger = logging.getLogger(__name__)
_SECTION_RE = re.compile(r"^(Args|Arguments|Returns|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_RE = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True, slots=True)
class Tool(Generic[P, R]):
    """A Python function exposed as a tool. Calling the `Tool` calls the function unchanged.

    Build one with `@tool` or `Tool.from_function`; serve a `ToolSet` of them with
    `tools.http_server` or `tools.mcp_server`.
    """

    name: str
    description: str
    """What the tool does (the docstring's text before its sections)."""
    idempotent: bool
    """Safe to call twice with the same arguments; only idempotent tools are retried."""
    input_schema: Mapping[str, Any]
    """JSON schema of the arguments object, derived from the type hints."""
    function: Callable[P, R]
    arguments_model: type[BaseModel]
    """Pydantic model the arguments are validated with (extra arguments are rejected)."""

    @classmethod
    def from_function(
        cls,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        idempotent: bool = False,
    ) -> Tool[P, R]:
        """Make a tool from a typed function (sync or async).

        Args:
            function: every parameter must be annotated; Google-style ``Args:`` lines in
                its docstring become parameter descriptions.
            name: the tool name (default: the function's name).
            description: what the tool does (default: the docstring's summary).
            idempotent: whether the client may retry the call after a transient failure.

        Raises:
            ToolError: the function cannot be described as a tool (code ``tool-definition``).
        """
        tool_name = name or function.__name__
        summary, arg_docs = _parse_docstring(inspect.getdoc(function) or "")
        model = _arguments_model(function, tool_name, arg_docs)
        return cls(
            name=tool_name,
            description=description if description is not None else summary,
            idempotent=idempotent,
            input_schema=_drop_titles(model.model_json_schema()),
            function=function,
            arguments_model=model,
        )

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the underlying function directly (no validation)."""
        return self.function(*args, **kwargs)

    def spec(self) -> ToolSpec:
        """Describe this tool for clients."""
        return ToolSpec(
            name=self.name,
            description=self.description,
            input_schema=dict(self.input_schema),
            idempotent=self.idempotent,
        )

    def validate_arguments(self, arguments: object) -> dict[str, Any]:
        """Check arguments against the schema and coerce them to the annotated types.

        Raises:
            ToolArgumentError: naming the first bad argument and what is wrong with it.
        """
        if not isinstance(arguments, Mapping):
            raise ToolArgumentError(
                f"tool '{self.name}': arguments must be a JSON object, "
                f"got {type(arguments).__name__}"
            )
        try:
            model = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            fields = self.arguments_model.model_fields
            raise _argument_error(self.name, fields, exc) from None
        return {key: getattr(model, key) for key in type(model).model_fields}

    async def invoke(self, arguments: object) -> Any:
        """Validate the arguments, run the function and return its result as JSON-compatible data.

        Sync functions run in a worker thread so they do not block the event loop.

        Raises:
            ToolArgumentError: the arguments are invalid (or the tool said so).
            ToolError: the tool raised a `ToolError` itself; it is passed through.
            ToolCallFailed: the tool raised anything else (retryable: it may be transient).
        """
        values = self.validate_arguments(arguments)
        function: Callable[..., Any] = self.function
        try:
            if inspect.iscoroutinefunction(function):
                result = await function(**values)
            else:
                result = await anyio.to_thread.run_sync(functools.partial(function, **values))
                if inspect.isawaitable(result):
                    result = await result
        except ToolError:
            raise
        except Exception as exc:
            _logger.exception("tool %r raised", self.name)
            raise ToolCallFailed(
                f"tool '{self.name}' raised {type(exc).__name__}: {exc}", is_retryable=True
            ) from exc
        return to_jsonable_python(result)


@overload
def tool(function: Callable[P, R], /) -> Tool[P, R]: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...
def tool(
    function: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Declare a tool: ``@tool`` or ``@tool(idempotent=True, name=...)``.

    Args:
        function: the function, when used bare.
        name: the tool name (default: the function's name).
        description: what the tool does (default: the docstring's summary).
        idempotent: whether the client may retry the call after a transient failure.

    Returns:
        A `Tool`, or a decorator making one.
    """

    def decorate(fn: Callable[P, R]) -> Tool[P, R]:
        return Tool.from_function(fn, name=name, description=description, idempotent=idempotent)

    return decorate(function) if function is not None else decorate


class ToolSet:
    """An ordered, immutable group of tools with unique names; what a server serves."""

    def __init__(self, tools: Iterable[Tool[..., Any]] = ()) -> None:
        self._tool_by_name: dict[str, Tool[..., Any]] = {}
        for item in tools:
            if item.name in self._tool_by_name:
                raise ToolError(
                    f"two tools are named '{item.name}'; rename one", code="tool-duplicate"
                )
            self._tool_by_name[item.name] = item

    def __iter__(self) -> Iterator[Tool[..., Any]]:
        return iter(self._tool_by_name.values())

    def __len__(self) -> int:
        return len(self._tool_by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._tool_by_name

    def __repr__(self) -> str:
        return f"ToolSet({list(self._tool_by_name)})"

    @property
    def names(self) -> tuple[str, ...]:
        """Tool names, in declaration order."""
        return tuple(self._tool_by_name)

    def get(self, name: str) -> Tool[..., Any]:
        """Return the tool called `name`.

        Raises:
            ToolNotFound: there is none; the message lists the available names.
        """
        try:
            return self._tool_by_name[name]
        except KeyError:
            available = ", ".join(self._tool_by_name) or "none"
            raise ToolNotFound(f"unknown tool '{name}' (available: {available})") from None

    def select(self, names: Iterable[str]) -> ToolSet:
        """A new set with only the named tools, in the given order.

        Raises:
            ToolNotFound: a name is not in this set.
        """
        return ToolSet(self.get(name) for name in names)

    def specs(self) -> list[ToolSpec]:
        """Describe every tool for clients."""
        return [item.spec() for item in self]

    async def call(self, name: str, arguments: object) -> Any:
        """Run one tool and return its JSON-compatible result.

        Raises:
            ToolNotFound: no tool has this name.
            ToolArgumentError: the arguments are invalid.
            ToolError: the tool failed (see `Tool.invoke`).
        """
        return await self.get(name).invoke(arguments)


def _arguments_model(
    function: Callable[..., Any], tool_name: str, arg_docs: Mapping[str, str]
) -> type[BaseModel]:
    """Build the pydantic model for a function's parameters."""
    try:
        hints = get_type_hints(function, include_extras=True)
    except (NameError, TypeError) as exc:
        raise ToolError(
            f"tool '{tool_name}': cannot resolve type hints: {exc}", code="tool-definition"
        ) from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise ToolError(
                f"tool '{tool_name}': parameter '{param.name}' must be a plain named parameter "
                "(no *args, **kwargs or positional-only)",
                code="tool-definition",
            )
        if param.name not in hints:
            raise ToolError(
                f"tool '{tool_name}': parameter '{param.name}' needs a type annotation",
                code="tool-definition",
            )
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            hints[param.name],
            Field(default, description=arg_docs.get(param.name)),
        )
    model_name = "".join(part.title() for part in re.split(r"\W+|_", tool_name)) + "Arguments"
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)
    return create_model(model_name, __config__=config, **fields)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (text before sections, {arg: description})."""
    lines = doc.splitlines()
    summary: list[str] = []
    arg_docs: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in lines:
        match = _SECTION_RE.match(line.strip()) if not line.startswith(" ") else None
        if match:
            section, current = match.group(1), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments") and line.strip():
            arg = _ARG_RE.match(line.strip())
            if arg and not line.startswith(" " * 8):
                current = arg.group(1)
                arg_docs[current] = arg.group(2).strip()
            elif current is not None:
                arg_docs[current] = f"{arg_docs[current]} {line.strip()}".strip()
    return "\n".join(summary).strip(), arg_docs


def _drop_titles(schema: Any) -> Any:
    """Remove pydantic's auto-generated ``title`` keys: they only cost prompt tokens."""
    if isinstance(schema, list):
        return [_drop_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties") and isinstance(value, dict):
            cleaned[key] = {name: _drop_titles(sub) for name, sub in value.items()}
        elif key != "title" or not isinstance(value, str):
            cleaned[key] = _drop_titles(value)
    return cleaned


def _argument_error(
    tool_name: str, field_names: Iterable[str], exc: ValidationError
) -> ToolArgumentError:
    """Turn a pydantic error into one message naming each bad argument."""
    problems: list[str] = []
    first_field: str | None = None
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        first_field = first_field or field
        if error["type"] == "extra_forbidden":
            expected = ", ".join(field_names) or "none"
            problems.append(f"argument '{field}': unexpected argument (expected: {expected})")
        elif error["type"] == "missing":
            problems.append(f"argument '{field}': missing (required)")
        else:
            got = reprlib.repr(error["input"])
            problems.append(f"argument '{field}': {error['msg']} (got {got})")
    return ToolArgumentError(f"tool '{tool_name}': " + "; ".join(problems), field=first_field)
