"""Tool calling in avp_core: schemas through the chat template (or the fallback format),
calls parsed into typed results, tool_choice, streaming, and exact reuse across a tool loop,
on the built-in models and on the real SmolLM2 (whose template has no tool support)."""

from __future__ import annotations

import pytest
import torch

from avp_core.connectors import chat
from avp_core.errors import InvalidRequestError
from avp_core.testing import scripted
from avp_core.tools import (
    Reply,
    ToolCall,
    check_choice,
    format_call,
    normalize_tools,
    parse_reply,
    schema_error,
)

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}
TOOLS = normalize_tools([ADD])
CALL = format_call("add", {"a": 2, "b": 3})
TASK = [{"role": "system", "content": "You add numbers."}, {"role": "user", "content": "2 + 3?"}]


# -- parsing ----------------------------------------------------------------------------------


def test_a_valid_call_is_parsed_with_a_deterministic_id():
    reply = parse_reply(f"Let me add.\n{CALL}", TOOLS, seed=[1, 2, 3])
    assert reply.content == "Let me add."
    assert reply.tool_calls == (ToolCall("add", {"a": 2, "b": 3}, reply.tool_calls[0].id),)
    assert reply.tool_calls[0].id == parse_reply(CALL, TOOLS, seed=[1, 2, 3]).tool_calls[0].id
    assert reply.tool_calls[0].id != parse_reply(CALL, TOOLS, seed=[1, 2, 4]).tool_calls[0].id
    two = parse_reply(CALL + "\n" + format_call("add", '{"a": 1, "b": 1}'), TOOLS)
    assert [c.arguments for c in two.tool_calls] == [{"a": 2, "b": 3}, {"a": 1, "b": 1}]
    assert len({c.id for c in two.tool_calls}) == 2
    assert parse_reply("No tools needed.", TOOLS) == Reply("No tools needed.")


@pytest.mark.parametrize(
    ("text", "error", "name"),
    [
        (
            '<tool_call>\n{"name": "add", "arguments": {"a": 2,}}\n</tool_call>',
            "not valid JSON",
            "add",
        ),
        (format_call("mul", {"a": 2}), "unknown tool 'mul'", "mul"),
        (format_call("add", {"a": "2", "b": 3}), "arguments.a must be integer", "add"),
        (format_call("add", {"a": 2}), "missing the required 'b'", "add"),
        (format_call("add", {"a": 2, "b": 3, "c": 4}), "unexpected key 'c'", "add"),
        (format_call("add", [2, 3]), "must be a JSON object", "add"),
        ('<tool_call>\n{"name": "add", "arguments": {"a"', "no closing", "add"),
    ],
)
def test_a_bad_call_is_kept_as_text_and_reported(text, error, name):
    reply = parse_reply(f"Sure. {text}", TOOLS)
    assert reply.tool_calls == () and reply.content == f"Sure. {text}"
    (invalid,) = reply.invalid_tool_calls
    assert error in invalid.error and invalid.name == name and invalid.id.startswith("call_")


def test_schema_subset_and_bad_tool_definitions():
    assert schema_error(True, {"type": "integer"}) == "arguments must be integer, got bool"
    assert schema_error(2.0, {"type": "integer"}) == ""
    assert "one of" in schema_error("x", {"enum": ["a", "b"]})
    assert "[1]" in schema_error([1, "x"], {"type": "array", "items": {"type": "integer"}})
    with pytest.raises(InvalidRequestError, match="'name'"):
        normalize_tools([{"type": "function", "function": {"description": "no name"}}])
    with pytest.raises(InvalidRequestError, match="unique"):
        normalize_tools([ADD, ADD])
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        check_choice("mul", TOOLS)
    with pytest.raises(InvalidRequestError, match="at least one tool"):
        check_choice("required", [])


# -- rendering --------------------------------------------------------------------------------


def test_tools_render_through_the_template_or_the_documented_fallback(qwen, smollm2):
    native = qwen.tokenizer.decode(qwen.prompt_ids(TASK, [ADD]))
    assert native.count('"name": "add"') == 1 and "# Tools" in native
    assert "You may call one or more functions" not in native  # the template's own section
    fallback = smollm2.tokenizer.decode(smollm2.prompt_ids(TASK, [ADD]))
    assert "You may call one or more functions" in fallback and '"name": "add"' in fallback
    assert fallback.index("You add numbers.") < fallback.index("# Tools")  # one system turn
    # calls the template cannot render are written into the assistant text (the block format)
    turns = [*TASK, called(CALL), {"role": "tool", "content": "5", "tool_call_id": "c"}]
    rendered = chat.render_text(smollm2.tokenizer, turns, generation_prompt=True)
    assert f"<|im_start|>assistant\n{CALL}<|im_end|>" in rendered
    assert "<|im_start|>tool\n5<|im_end|>" in rendered  # any role renders in its ChatML


def called(text: str) -> dict:
    reply = parse_reply(text, TOOLS)
    return {
        "role": "assistant",
        "content": reply.content,
        "tool_calls": [c.to_openai() for c in reply.tool_calls],
    }


# -- generation -------------------------------------------------------------------------------


def tool_loop(connector, latent: bool):
    """A two-call loop: the model calls add, reads the result, answers."""
    with scripted(connector, [CALL, "It is 5."]):
        first = connector.generate(TASK, tools=[ADD], keep_logits=True)
        turns = [*TASK, called(first.text), {"role": "tool", "content": "5", "tool_call_id": "c"}]
        context = first.context if latent else None
        second = connector.generate(turns, tools=[ADD], context=context, keep_logits=True)
    return first, second


@pytest.mark.parametrize("name", ["qwen", "smollm2"])
def test_a_tool_loop_continues_its_own_kv_and_equals_the_text_path(name, request):
    connector = request.getfixturevalue(name)
    first, latent = tool_loop(connector, latent=True)
    _, text = tool_loop(connector, latent=False)
    assert first.tool_calls[0].arguments == {"a": 2, "b": 3} and first.content == ""
    assert latent.usage.reused_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert text.usage.reused_tokens == 0
    assert latent.token_ids == text.token_ids and latent.text == "It is 5."
    assert torch.allclose(latent.first_logits, text.first_logits, atol=1e-4, rtol=0)


def test_unscripted_generation_matches_too(qwen):
    turns = [*TASK, called(CALL), {"role": "tool", "content": "5", "tool_call_id": "c"}]
    prefix = qwen.generate(TASK, tools=[ADD], max_new_tokens=4)
    latent = qwen.generate(turns, tools=[ADD], context=prefix.context, max_new_tokens=8)
    text = qwen.generate(turns, tools=[ADD], max_new_tokens=8)
    assert latent.usage.reused_tokens > 0 and latent.token_ids == text.token_ids


def test_a_context_from_another_model_falls_back_to_text(qwen, other):
    first, _ = tool_loop(qwen, latent=True)
    turns = [*TASK, called(CALL), {"role": "tool", "content": "5", "tool_call_id": "c"}]
    reply = other.generate(turns, tools=[ADD], context=first.context, max_new_tokens=4)
    assert reply.usage.reused_tokens == 0 and not reply.handshake.latent


def test_tool_choice_opens_the_reply_and_streaming_holds_back_the_blocks(qwen):
    with scripted(qwen, [CALL] * 3) as script:
        named = qwen.generate(TASK, tools=[ADD], tool_choice="add")
        required = qwen.generate(TASK, tools=[ADD], tool_choice="required")
        pieces = list(
            qwen.generate_stream([*TASK[:1], {"role": "user", "content": "Hi"}], tools=[ADD])
        )
    assert script.prompts[0].endswith('<tool_call>\n{"name": "add", "arguments": ')
    assert script.prompts[1].endswith('<tool_call>\n{"name": "')
    assert named.text == required.text == CALL and named.tool_calls == required.tool_calls
    *chunks, generation = pieces
    assert chunks == [] and generation.tool_calls and generation.reply == ""
    none = qwen.generate(TASK, tools=[ADD], tool_choice="none", max_new_tokens=2)
    assert none.tool_calls == () and none.content is None  # tools not shown, nothing parsed
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        qwen.generate(TASK, tools=[ADD], tool_choice="mul")


def test_scripted_needs_a_connector_with_a_logits_processor():
    with pytest.raises(InvalidRequestError, match="logits_processor"), scripted(object(), []):
        pass
