"""CrewAI on the real model (SmolLM2-135M-Instruct): the exact latent path equals text."""

from __future__ import annotations

from avp_crewai import AVPLLM
from crewai import Agent, Crew, Process, Task
from test_crewai import _offline_crewai  # noqa: F401  (crewai offline, quiet, own storage)

from avp_core import ContextStore

DOCUMENT = (
    "The Brenmoor ferry leaves the north pier at seven. It carries bicycles but not cars. "
    "The crossing takes forty minutes, and the cafe on board sells tea and almond cake."
)
TOKENS = 64


def crew(llm: AVPLLM) -> Crew:
    def agent(role: str, goal: str, backstory: str) -> Agent:
        return Agent(role=role, goal=goal, backstory=backstory, llm=llm, allow_delegation=False)

    reader = agent("reader", "Report what a document says.", "You read travel documents closely.")
    writer = agent("writer", "Write short travel tips.", "You turn notes into tips.")
    read = Task(
        description=f"Document: {DOCUMENT}\n\nWhat does it say about {{topic}}?",
        expected_output="One sentence.",
        agent=reader,
    )
    tip = Task(
        description="Give one tip about {topic} for a traveller.",
        expected_output="One sentence.",
        agent=writer,
        context=[read],
    )
    return Crew(agents=[reader, writer], tasks=[read, tip], process=Process.sequential)


def kickoffs(connector, llm: AVPLLM) -> tuple[list[list[str]], list]:
    inputs = [{"topic": "bicycles"}, {"topic": "the cafe"}]
    with connector.record() as calls:
        outputs = crew(llm).kickoff_for_each(inputs=inputs)
    return [[t.raw for t in output.tasks_output] for output in outputs], calls


def test_cached_latent_crew_gives_the_text_crews_answers_and_stops_at_end_of_turn(smollm2):
    text, text_calls = kickoffs(smollm2, AVPLLM(smollm2, latent=False, max_new_tokens=TOKENS))
    cached = AVPLLM(smollm2, max_new_tokens=TOKENS, context_cache=ContextStore())
    latent, latent_calls = kickoffs(smollm2, cached)
    assert latent == text and all(answer.strip() for run in text for answer in run)
    assert [c.completion_tokens for c in latent_calls] == [c.completion_tokens for c in text_calls]
    # calls that end before the limit end at <|im_end|>, at the same token on both paths (crewai
    # 1.15 asks for a plain answer and every call ends so; 1.0's ReAct format can run longer)
    assert any(c.completion_tokens < TOKENS for c in text_calls)
    assert all(c.reused_tokens == 0 for c in text_calls)
    # the second input's calls continue the first input's prompts up to where {topic} differs
    read, tip = latent_calls[len(latent_calls) // 2 :]
    assert read.reused_tokens > read.prompt_tokens // 2 and tip.reused_tokens > 0
    prefilled = [sum(c.prefilled_tokens for c in run) for run in (latent_calls, text_calls)]
    assert prefilled[0] < prefilled[1]


def test_an_agents_free_answer_after_a_tool_equals_text(smollm2):
    """The tool call is scripted (the model is too small to choose it); what the agent writes
    after the tool's result is the model's own, greedy, on both paths."""
    import json

    from avp_crewai.llm import NATIVE_TOOLS
    from crewai.tools import tool

    from avp_core.testing import scripted
    from avp_core.tools import format_call

    @tool("Ferry time")
    def ferry_time(pier: str) -> str:
        """When the ferry leaves a pier."""
        return f"The ferry leaves the {pier} pier at seven."

    arguments = {"pier": "north"}
    call = (
        format_call("ferry_time", arguments)
        if NATIVE_TOOLS
        else f"Thought: I check.\nAction: Ferry time\nAction Input: {json.dumps(arguments)}"
    )

    def run(latent: bool) -> tuple[str, list]:
        guide = Agent(
            role="Guide",
            goal="Answer travel questions.",
            backstory="Brief.",
            llm=AVPLLM(smollm2, latent=latent, max_new_tokens=48),
            tools=[ferry_time],
            max_iter=3,
        )
        task = Task(
            description="When does the ferry leave?", expected_output="A time.", agent=guide
        )
        with scripted(smollm2, [call]), smollm2.record() as calls:
            output = Crew(agents=[guide], tasks=[task], process=Process.sequential).kickoff()
        return output.raw, calls

    (text, text_calls), (latent, latent_calls) = run(False), run(True)
    assert latent == text and latent.strip()
    assert [u.prompt_tokens for u in latent_calls] == [u.prompt_tokens for u in text_calls]
    assert all(u.reused_tokens == 0 for u in text_calls)
    if NATIVE_TOOLS:  # the call after the tool's result continues the call's KV
        first, second = latent_calls[:2]
        assert second.reused_tokens == first.prompt_tokens + first.completion_tokens
