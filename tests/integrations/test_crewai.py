"""CrewAI adapter: AVPLLM and LatentCrew, through real crews (``crew.kickoff()``), offline.

No mock of the model or the framework: the built-in random-weight models run through
crewai's own agents, executors, events and usage accounting. Their greedy output is
gibberish that never ends by itself, so every LLM here has a small ``max_new_tokens``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import time

import pytest
from avp_crewai import AVPLLM, LatentCrew, context_of, handle_of
from avp_crewai.llm import NATIVE_TOOLS
from crewai import Agent, Crew, Process, Task
from crewai.events import crewai_event_bus
from crewai.events.types.llm_events import LLMCallCompletedEvent, LLMCallStartedEvent
from crewai.llms.base_llm import BaseLLM

from avp_core import InvalidRequestError, ModelNotFoundError
from avp_core.connectors.chat import continuation_ids
from avp_suite.bench.workload import ChainWorkload, measure

TOKENS = 10


@pytest.fixture(scope="session", autouse=True)
def _offline_crewai(tmp_path_factory):
    """crewai offline and quiet, with its own storage (crewai reads these when it runs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CREWAI_TRACING_ENABLED", "false")
        patch.setenv("CREWAI_DISABLE_TELEMETRY", "true")
        patch.setenv("OTEL_SDK_DISABLED", "true")
        patch.setenv("CREWAI_TESTING", "true")  # no first-run trace prompt (1.0 waits 20 s)
        # crewai keeps a per-project SQLite log of task outputs; versions differ in its schema
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("crewai-data")))
        patch.setenv("CREWAI_STORAGE_DIR", "avp-crewai-tests")
        yield


class Calls:
    """crewai's LLM call events, as crewai's event bus delivers them (in a worker pool)."""

    def __init__(self) -> None:
        self.started: list = []
        self.completed: list = []
        self._lock = threading.Lock()

    def wait(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.started) >= count and len(self.completed) >= count:
                    return
            time.sleep(0.01)
        raise AssertionError(f"expected {count} LLM call events, got {len(self.completed)}")

    def messages_for(self, task: Task) -> list[dict]:
        (event,) = [e for e in self.started if e.task_id == str(task.id)]
        return event.messages


@pytest.fixture
def calls():
    recorder = Calls()
    with crewai_event_bus.scoped_handlers():

        @crewai_event_bus.on(LLMCallStartedEvent)
        def _started(source, event):
            with recorder._lock:
                recorder.started.append(event)

        @crewai_event_bus.on(LLMCallCompletedEvent)
        def _completed(source, event):
            with recorder._lock:
                recorder.completed.append(event)

        yield recorder


def chain_crew(llms, *, crew_class=LatentCrew, topic="rivers", explicit_context=True):
    """A sequential crew: one agent and one task per LLM, task i takes task i-1 as context."""
    agents = [
        Agent(
            role=f"agent {i}",
            goal=f"Say something about {topic}, step {i}.",
            backstory="You are careful and brief.",
            llm=llm,
            verbose=False,
        )
        for i, llm in enumerate(llms)
    ]
    tasks: list[Task] = []
    for i, agent in enumerate(agents):
        # without an explicit context, a sequential task reads every earlier output
        context = {"context": [tasks[-1]] if tasks else None} if explicit_context else {}
        tasks.append(
            Task(
                description=f"Step {i}: write one line about {topic}.",
                expected_output="One line.",
                agent=agent,
                **context,
            )
        )
    return crew_class(agents=agents, tasks=tasks, process=Process.sequential, verbose=False)


def user_text(messages) -> str:
    return "\n".join(str(m["content"]) for m in messages if m["role"] == "user")


# -- AVPLLM ----------------------------------------------------------------------------------


def test_avpllm_is_a_crewai_llm(qwen):
    llm = AVPLLM(qwen, max_new_tokens=TOKENS)
    assert isinstance(llm, BaseLLM)
    assert Agent(role="r", goal="g", backstory="b", llm=llm).llm is llm
    assert llm.model == "avp/tiny-qwen2"
    assert llm.get_context_window_size() == int(qwen.context_window * 0.85)
    assert llm.supports_stop_words() and llm.supports_function_calling() is NATIVE_TOOLS
    assert not AVPLLM(qwen, function_calling=False).supports_function_calling()
    assert llm.latent and not AVPLLM(qwen, latent=False).latent
    assert llm.get_input_tokens_count("Hello there") == qwen.count_tokens("Hello there")
    assert copy.deepcopy(llm).connector is qwen  # copies never copy the model


def test_call_uses_the_chat_template_reports_usage_and_emits_events(qwen, calls):
    llm = AVPLLM(qwen, max_new_tokens=TOKENS)
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hi"}]
    expected = qwen.generate(messages, max_new_tokens=TOKENS)
    assert llm.call(messages) == expected.text
    usage = llm.get_token_usage_summary()
    assert usage.prompt_tokens == expected.usage.prompt_tokens == qwen.count_tokens(messages)
    assert usage.completion_tokens == TOKENS and usage.successful_requests == 1
    calls.wait(1)
    assert calls.started[0].messages == messages
    assert calls.completed[0].response == expected.text


def test_stop_words_end_the_answer(qwen):
    free = AVPLLM(qwen, max_new_tokens=24).call("Tell me about rivers.")
    stop = free[len(free) // 2 : len(free) // 2 + 3]
    assert stop.strip(), free
    stopped = AVPLLM(qwen, max_new_tokens=24, stop=[stop]).call("Tell me about rivers.")
    assert stopped == free[: free.index(stop)]


def test_acall_generates_in_a_worker_thread(qwen, loop_gate):
    llm = AVPLLM(qwen, max_new_tokens=16)
    gate = loop_gate(qwen)

    async def main():
        call = asyncio.ensure_future(llm.acall("Describe a river."))
        await gate.open_after(call)
        return threading.get_ident(), await call

    loop_thread, text = asyncio.run(main())
    assert gate.passed(loop_thread)  # the model ran off the loop while the loop kept running
    gate.close()
    assert text == AVPLLM(qwen, max_new_tokens=16).call("Describe a river.")


def test_context_window_is_respected(qwen):
    from crewai.utilities.exceptions.context_window_exceeding_exception import (
        LLMContextLengthExceededError,
    )

    llm = AVPLLM(qwen, max_new_tokens=TOKENS)
    with pytest.raises(LLMContextLengthExceededError, match="maximum context length"):
        llm.call("river " * qwen.context_window)  # refused before generating
    context = qwen.generate("Name a river.", max_new_tokens=4).context
    room = llm.get_context_window_size() - context.seq_len
    assert AVPLLM(qwen, max_new_tokens=room).can_continue(context)
    assert not AVPLLM(qwen, max_new_tokens=room + 1).can_continue(context)  # text instead
    assert not AVPLLM(qwen, latent=False).can_continue(context)


def test_bad_input_fails_before_kickoff(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="no-such-model"):
        AVPLLM.from_pretrained(missing)
    with pytest.raises(InvalidRequestError, match="HuggingFaceConnector"):
        AVPLLM(connector="tiny-qwen2")  # type: ignore[arg-type]


# -- LatentCrew ------------------------------------------------------------------------------


def test_latent_crew_continues_each_predecessor(qwen, calls):
    llms = [AVPLLM(qwen, max_new_tokens=TOKENS) for _ in range(3)]
    crew = chain_crew(llms)
    with qwen.record() as usages:
        result = crew.kickoff()
    outputs = result.tasks_output
    handles = [handle_of(o) for o in outputs]
    assert all(handles) and len({h.run_id for h in handles}) == 1
    assert usages[0].reused_tokens == 0
    calls.wait(3)
    for i in (1, 2):
        previous = handles[i - 1].context
        assert usages[i].reused_tokens == previous.seq_len  # all of the predecessor's context
        assert handles[i].parent_id == previous.context_id
        # ... and prefills only its own new turn: no context text, just its own messages
        messages = calls.messages_for(crew.tasks[i])
        assert outputs[i - 1].raw.strip() not in user_text(messages)
        new_turn = continuation_ids(qwen.tokenizer, messages, previous.sequence[-8:])
        assert usages[i].prefilled_tokens == len(new_turn)
    # crewai's usage accounting sees every call; the reused part as cached prompt tokens
    assert result.token_usage.prompt_tokens == sum(u.prompt_tokens for u in usages)
    assert result.token_usage.cached_prompt_tokens == sum(u.reused_tokens for u in usages)
    # the handles never reach crewai's JSON: outputs serialize as usual
    assert "avp" not in result.model_dump_json().lower()
    assert json.loads(json.dumps(handles[-1].summary()))["seq_len"] == handles[-1].context.seq_len
    assert context_of(outputs[-1].model_copy()) is handles[-1].context
    assert context_of(copy.deepcopy(outputs[-1])) is handles[-1].context

    again = crew.kickoff()
    assert [o.raw for o in again.tasks_output] == [o.raw for o in outputs]  # deterministic
    assert handle_of(again.tasks_output[0]).run_id != handles[0].run_id  # a new kickoff


def test_plain_crew_on_text_avpllm_is_the_baseline(qwen, calls):
    crew = chain_crew(
        [AVPLLM(qwen, latent=False, max_new_tokens=TOKENS) for _ in range(3)], crew_class=Crew
    )
    with qwen.record() as usages:
        result = crew.kickoff()
    assert [u.reused_tokens for u in usages] == [0, 0, 0]
    assert context_of(result.tasks_output[0]) is None
    calls.wait(3)
    for i in (1, 2):  # crewai's own text context: the previous answer, re-prefilled
        assert result.tasks_output[i - 1].raw.strip() in user_text(
            calls.messages_for(crew.tasks[i])
        )
    again = crew.kickoff()
    assert [o.raw for o in again.tasks_output] == [o.raw for o in result.tasks_output]


def test_default_context_does_not_repeat_what_the_continued_context_holds(qwen, calls):
    crew = chain_crew(
        [AVPLLM(qwen, max_new_tokens=TOKENS) for _ in range(3)], explicit_context=False
    )
    with qwen.record() as usages:
        result = crew.kickoff()
    calls.wait(3)
    last = user_text(calls.messages_for(crew.tasks[2]))
    # task 2 continues task 1, which continued task 0: neither answer comes back as text
    assert usages[2].reused_tokens == context_of(result.tasks_output[1]).seq_len
    assert all(o.raw.strip() not in last for o in result.tasks_output[:2])


def test_mixed_models_fall_back_to_text_for_that_task(qwen, other, calls):
    llms = [AVPLLM(qwen, max_new_tokens=TOKENS), AVPLLM(qwen, max_new_tokens=TOKENS)]
    crew = chain_crew([*llms, AVPLLM(other, max_new_tokens=TOKENS)])
    with qwen.record() as on_qwen, other.record() as on_other:
        result = crew.kickoff()
    assert len(result.tasks_output) == 3 and result.raw
    assert on_qwen[1].reused_tokens == context_of(result.tasks_output[0]).seq_len
    assert [u.reused_tokens for u in on_other] == [0]  # JSON handshake: plain text
    calls.wait(3)
    assert result.tasks_output[1].raw.strip() in user_text(calls.messages_for(crew.tasks[2]))
    assert handle_of(result.tasks_output[2]).context.identity == other.identity


def test_a_text_agent_never_continues_but_its_output_can_be_continued(qwen):
    latent, text = (
        AVPLLM(qwen, max_new_tokens=TOKENS),
        AVPLLM(qwen, latent=False, max_new_tokens=TOKENS),
    )
    crew = chain_crew([latent, text, AVPLLM(qwen, max_new_tokens=TOKENS)])
    with qwen.record() as usages:
        result = crew.kickoff()
    assert usages[1].reused_tokens == 0  # latent=False reads its context as text
    assert usages[2].reused_tokens == context_of(result.tasks_output[1]).seq_len


def test_several_context_tasks_continue_the_latest_compatible_one(qwen, other, calls):
    a, c = AVPLLM(qwen, max_new_tokens=TOKENS), AVPLLM(other, max_new_tokens=TOKENS)
    agents = [
        Agent(role=r, goal="Be brief.", backstory="Brief.", llm=llm)
        for r, llm in (("a", a), ("c", c), ("b", AVPLLM(qwen, max_new_tokens=TOKENS)))
    ]
    t0 = Task(description="Name a river.", expected_output="A name.", agent=agents[0])
    t1 = Task(description="Name a lake.", expected_output="A name.", agent=agents[1], context=[t0])
    t2 = Task(
        description="Compare them.", expected_output="One line.", agent=agents[2], context=[t0, t1]
    )
    crew = LatentCrew(agents=agents, tasks=[t0, t1, t2])
    with qwen.record() as on_qwen:
        result = crew.kickoff()
    first, second, _ = result.tasks_output
    # t2 continues t0 (t1 ran on another model), and reads t1's answer as text
    assert on_qwen[1].reused_tokens == context_of(first).seq_len
    calls.wait(3)
    last = user_text(calls.messages_for(t2))
    assert second.raw.strip() in last and first.raw.strip() not in last


def run_both(crews, how):
    results: dict[int, object] = {}
    if how == "threads":
        barrier = threading.Barrier(len(crews))

        def go(i):
            barrier.wait()
            results[i] = crews[i].kickoff()

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(crews))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:

        async def main():
            return await asyncio.gather(*(crew.kickoff_async() for crew in crews))

        results = dict(enumerate(asyncio.run(main())))
    return [results[i] for i in range(len(crews))]


@pytest.mark.parametrize("how", ["threads", "kickoff_async"])
def test_concurrent_kickoffs_do_not_see_each_others_contexts(qwen, how):
    shared = AVPLLM(qwen, max_new_tokens=TOKENS)  # one LLM object serves both crews
    crews = [chain_crew([shared] * 3, topic=topic) for topic in ("rivers", "mountains")]
    alone = [[o.raw for o in crew.kickoff().tasks_output] for crew in crews]
    together = run_both(crews, how)
    for result, expected in zip(together, alone):
        assert [o.raw for o in result.tasks_output] == expected
        handles = [handle_of(o) for o in result.tasks_output]
        assert len({h.run_id for h in handles}) == 1
        for previous, current in itertools.pairwise(handles):
            assert current.parent_id == previous.context.context_id
    runs = [handle_of(r.tasks_output[0]).run_id for r in together]
    assert runs[0] != runs[1]


@pytest.mark.skipif("stream" not in Crew.model_fields, reason="crewai without crew streaming")
def test_streaming_kickoff_with_json_output_log(qwen, tmp_path):
    log = tmp_path / "log.json"
    crew = chain_crew([AVPLLM(qwen, max_new_tokens=TOKENS) for _ in range(2)])
    crew.stream = True
    crew.output_log_file = str(log)
    streaming = crew.kickoff()
    chunks = [chunk.content for chunk in streaming]
    outputs = streaming.result.tasks_output
    assert "".join(chunks) == "".join(o.raw for o in outputs)  # every token, as it came
    assert context_of(outputs[1]).seq_len > context_of(outputs[0]).seq_len
    logged = json.loads(log.read_text())  # crewai's JSON log holds the text, never a handle
    assert [e["output"] for e in logged if e.get("status") == "completed"] == [
        o.raw for o in outputs
    ]


def test_kickoff_for_each_copies_stay_latent_and_share_the_cache(qwen):
    crew = chain_crew([AVPLLM(qwen, max_new_tokens=TOKENS) for _ in range(2)])
    assert isinstance(crew.copy(), LatentCrew)
    with qwen.record() as usages:
        results = crew.kickoff_for_each([{}, {}])
    # the second input's first task reuses the first input's prompt through the context cache
    assert len(results) == 2 and [u.reused_tokens > 0 for u in usages] == [False, True, True, True]
    assert usages[2].reused_tokens == usages[0].prompt_tokens - 1  # all but the last position


def test_chain_workload_prefills_less_in_latent_mode(qwen):
    from avp_suite.chains import crewai as chain

    workload = ChainWorkload.for_tokenizer(
        qwen.tokenizer, agents=3, doc_tokens=200, answer_tokens=8
    )
    text = measure("crewai", chain, qwen, workload, latent=False)
    latent = measure("crewai", chain, qwen, workload, latent=True)
    assert len(text.outputs) == len(latent.outputs) == 3
    assert text.outputs[0] == latent.outputs[0]  # the first task is the same prompt
    assert text.reused_tokens == 0 and latent.reused_tokens > 0
    assert latent.prefilled_tokens < text.prefilled_tokens


def test_any_connector_is_accepted_and_other_objects_are_refused(qwen):
    import pytest
    from test_connector import _Delegating

    from avp_core import InvalidRequestError

    llm = AVPLLM(_Delegating(qwen), max_new_tokens=4)
    assert llm.call("Say hi.") == AVPLLM(qwen, max_new_tokens=4).call("Say hi.")
    with pytest.raises(InvalidRequestError, match="avp_core Connector"):
        AVPLLM(object(), max_new_tokens=4)


# -- segment reuse: four roles, the document in every task -------------------------------------


def document_crew(llm):
    """Four agents with their own role, goal and backstory; every task quotes {document}."""
    agents = [
        Agent(role=role, goal=f"Work as the {role}.", backstory=f"You are the {role}.", llm=llm)
        for role in ("researcher", "analyst", "critic", "writer")
    ]
    tasks = [
        Task(
            description=f"As the {agent.role}, study this document:\n{{document}}",
            expected_output="One line.",
            agent=agent,
        )
        for agent in agents
    ]
    return Crew(agents=agents, tasks=tasks, process=Process.sequential, verbose=False)


def test_segment_reuse_in_a_crew_reuses_the_document_across_roles(qwen):
    from avp_core.reuse import SegmentReuse
    from avp_suite.bench.workload import make_document

    document, _ = make_document(qwen.tokenizer, 300)
    prefilled, outputs = {}, {}
    for name, options in (
        ("text", {"latent": False}),
        ("exact", {"context_cache": __import__("avp_core").ContextStore()}),
        ("segments", {"segment_reuse": SegmentReuse(recompute=0.0, anchors=False)}),
        ("dense", {"segment_reuse": SegmentReuse(recompute=1.0, anchors=False)}),
    ):
        llm = AVPLLM(qwen, max_new_tokens=TOKENS, **options)
        with qwen.record() as usage:
            result = document_crew(llm).kickoff(inputs={"document": document})
        prefilled[name] = sum(u.prefilled_tokens for u in usage)
        outputs[name] = [t.raw for t in result.tasks_output]
        if name == "segments":
            assert all(u.approx_reused_tokens > 250 for u in usage[1:])
    assert prefilled["exact"] > 0.9 * prefilled["text"]
    assert prefilled["segments"] < 0.5 * prefilled["text"]
    assert outputs["dense"] == outputs["text"]  # recompute 1 is dense prefill


def test_a_later_run_reuses_what_an_earlier_process_saved(qwen, tmp_path):
    from avp_core import ContextStore

    path = f"sqlite:{tmp_path / 'contexts.db'}"

    def crew():  # new LLMs and new store objects on one file: nothing live, as a new process
        return chain_crew(
            [
                AVPLLM(qwen, max_new_tokens=TOKENS, context_cache=ContextStore(backend=path))
                for _ in range(2)
            ]
        )

    with qwen.record() as first:
        before = crew().kickoff()
    with qwen.record() as later:
        after = crew().kickoff()
    assert first[0].reused_tokens == 0
    # the first task's prompt comes from the earlier run's saved context
    assert later[0].reused_tokens == first[0].prompt_tokens - 1  # all but the last position
    assert after.raw == before.raw  # exact reuse: the same answers
