"""Tool calling: tool schemas in, typed tool calls out.

Tools are OpenAI-style function schemas (``{"type": "function", "function": {"name",
"description", "parameters"}}``, or the inner ``{"name", ...}`` dict). A model calls a tool by
writing a Hermes-style block, the format Qwen2/2.5/3, Hermes and SmolLM3 templates use::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

:func:`parse_reply` splits a reply into its text and its calls. A block that does not parse
(bad JSON, an unknown tool, arguments that fail the schema, a block cut off by the token
limit) becomes an :class:`InvalidToolCall` with the reason, and its text stays in the
reply's content: nothing the model wrote is dropped. For templates that do not render tools,
:func:`instructions` is the documented fallback: a system turn listing the schemas and this
format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import InvalidRequestError

OPEN, CLOSE = "<tool_call>", "</tool_call>"

ToolChoice = Literal["auto", "required", "none"] | str
"""``auto``: the model decides; ``required``: it must call a tool; ``none``: tools are not
shown; any other string: it must call the tool of that name."""

_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|\Z)", re.DOTALL)
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: the tool's name, its arguments and an id for the result turn."""

    name: str
    arguments: dict[str, Any]
    id: str

    def to_openai(self) -> dict[str, Any]:
        """The ``tool_calls`` entry chat templates render (arguments as an object)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class InvalidToolCall:
    """A block that looked like a tool call but could not be used, and why."""

    text: str
    """The block's text between the tags."""
    error: str
    id: str
    name: str | None = None
    arguments: str = ""
    """The arguments as written (JSON text), or the whole block when they cannot be found."""


@dataclass(frozen=True)
class Reply:
    """A reply split into its text and its tool calls."""

    content: str
    """The text outside valid tool-call blocks (invalid blocks stay in it, verbatim)."""
    tool_calls: tuple[ToolCall, ...] = ()
    invalid_tool_calls: tuple[InvalidToolCall, ...] = field(default_factory=tuple)


def normalize_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Tools as OpenAI-style ``{"type": "function", "function": {...}}`` dicts, checked."""
    result: list[dict[str, Any]] = []
    for index, tool in enumerate(tools or []):
        function = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(
                f"tool {index} must be a function schema with a 'name' (OpenAI format: "
                f'{{"type": "function", "function": {{"name": ..., "parameters": ...}}}}), '
                f"got {tool!r:.80}"
            )
        entry = {"name": function["name"], "description": function.get("description", "")}
        entry["parameters"] = dict(function.get("parameters") or {"type": "object"})
        result.append({"type": "function", "function": entry})
    names = [t["function"]["name"] for t in result]
    if len(set(names)) != len(names):
        raise InvalidRequestError(f"tool names must be unique, got {names}")
    return result


def check_choice(choice: ToolChoice, tools: Sequence[Mapping[str, Any]]) -> None:
    names = [t["function"]["name"] for t in tools]
    if choice in ("auto", "none"):
        return
    if not tools:
        raise InvalidRequestError(f"tool_choice={choice!r} needs at least one tool")
    if choice != "required" and choice not in names:
        raise InvalidRequestError(
            f"tool_choice must be 'auto', 'required', 'none' or a tool name {names}, got {choice!r}"
        )


def response_prefix(choice: ToolChoice) -> str:
    """What the reply is made to start with so that ``choice`` holds: a call's opening for
    ``required``, a named call's opening for a tool name, nothing otherwise."""
    if choice in ("auto", "none"):
        return ""
    opening = OPEN + '\n{"name": "'
    return opening if choice == "required" else opening + f'{choice}", "arguments": '


def format_call(name: str, arguments: Any) -> str:
    """One call in the canonical block format (the form :func:`parse_reply` reads)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return (
        f'{OPEN}\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {args}}}\n{CLOSE}'
    )


def instructions(tools: Sequence[Mapping[str, Any]]) -> str:
    """The fallback system text for templates that do not render tools."""
    schemas = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query. "
        f"The functions, as JSON schemas:\n{schemas}\n\nTo call a function, reply with one "
        "block per call:\n" + format_call("<function-name>", "<arguments-json-object>")
    )


def call_id(seed: Sequence[int] | str, index: int) -> str:
    """A deterministic id: the same conversation and reply give the same id on every path."""
    digest = hashlib.blake2b(
        f"{list(seed) if not isinstance(seed, str) else seed}|{index}".encode(), digest_size=12
    )
    return "call_" + digest.hexdigest()


def parse_reply(
    text: str, tools: Sequence[Mapping[str, Any]], *, seed: Sequence[int] | str = ""
) -> Reply:
    """Split ``text`` into content and tool calls, validating each against ``tools``."""
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    calls: list[ToolCall] = []
    invalid: list[InvalidToolCall] = []
    content: list[str] = []
    position = 0
    for index, match in enumerate(_BLOCK.finditer(text)):
        content.append(text[position : match.start()])
        position = match.end()
        body, identifier = match.group(1).strip(), call_id(seed, index)
        if not match.group(0).endswith(CLOSE):
            error = f"the block has no closing {CLOSE} (cut off by the token limit?)"
            invalid.append(InvalidToolCall(body, error, identifier, _name_in(body), body))
            content.append(match.group(0))
            continue
        name, arguments, error = _read_call(body, by_name)
        if error:
            raw = _raw_arguments(body)
            invalid.append(InvalidToolCall(body, error, identifier, name or _name_in(body), raw))
            content.append(match.group(0))
        else:
            calls.append(ToolCall(str(name), arguments, identifier))
    content.append(text[position:])
    joined = "".join(content)
    return Reply(joined.strip() if calls else joined, tuple(calls), tuple(invalid))


def _name_in(body: str) -> str | None:
    """The tool name a broken block names, if it can be read."""
    match = re.search(r'"name"\s*:\s*"([^"]+)"', body)
    return match.group(1) if match else None


def _raw_arguments(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    arguments = data.get("arguments", data.get("parameters", {}))
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _read_call(
    body: str, tools: Mapping[str, Mapping[str, Any]]
) -> tuple[str | None, dict[str, Any], str]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        return None, {}, f"the call is not valid JSON ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None, {}, 'the call must be a JSON object with a "name" string'
    name = data["name"]
    arguments = data.get("arguments", data.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            return name, {}, f"the arguments are not valid JSON ({exc})"
    if name not in tools:
        return name, {}, f"unknown tool {name!r}; available: {sorted(tools)}"
    if not isinstance(arguments, dict):
        return name, {}, "the arguments must be a JSON object"
    problem = schema_error(arguments, tools[name].get("parameters") or {})
    return (
        name,
        arguments,
        f"arguments do not match the schema of {name!r}: {problem}" if problem else "",
    )


def schema_error(value: Any, schema: Mapping[str, Any], path: str = "arguments") -> str:
    """The first way ``value`` breaks ``schema`` (types, required, enum, extra keys), or "".

    A small JSON-schema subset, enough to reject the calls a framework would fail on."""
    expected = schema.get("type")
    kinds = expected if isinstance(expected, list) else [expected] if expected else []
    if kinds and not any(_is_type(value, kind) for kind in kinds):
        return f"{path} must be {' or '.join(map(str, kinds))}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path} must be one of {schema['enum']}, got {value!r}"
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                return f"{path} is missing the required {key!r}"
        for key, item in value.items():
            if key in properties:
                problem = schema_error(item, properties[key], f"{path}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{path} has an unexpected key {key!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problem = schema_error(item, schema["items"], f"{path}[{index}]")
            if problem:
                return problem
    return ""


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    python = _JSON_TYPES.get(kind)
    return python is None or isinstance(value, python)
