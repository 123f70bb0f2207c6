"""Segment reuse: every node has its own system prompt; the document is computed once."""

from avp_langgraph import AVPChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.graph import START, MessagesState, StateGraph

from avp_core import HuggingFaceConnector
from avp_core.reuse import SegmentReuse
from avp_suite.bench.workload import make_document

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # built-in, offline
document, _ = make_document(connector.tokenizer, 400)


def agent(system: str, model: AVPChatModel):
    def node(state: MessagesState) -> dict:
        # the usual pattern: the agent's own system prompt, then the shared conversation
        return {"messages": [model.invoke([SystemMessage(system), *state["messages"]])]}

    return node


def run(model: AVPChatModel) -> list:
    graph = StateGraph(MessagesState)
    graph.add_sequence(
        [
            ("researcher", agent("You are the researcher. List the key facts.", model)),
            ("critic", agent("You are the critic. Say what the researcher missed.", model)),
            ("writer", agent("You are the writer. Write the final summary.", model)),
        ]
    )
    graph.add_edge(START, "researcher")
    state = graph.compile().invoke({"messages": [HumanMessage(document)]})
    return state["messages"][1:]


for name, model in (
    ("exact", AVPChatModel(connector=connector, max_new_tokens=16)),
    (
        "segments",
        AVPChatModel(
            connector=connector,
            max_new_tokens=16,
            segment_reuse=SegmentReuse(recompute=0.3, anchors=False),
        ),
    ),
):
    print(name)
    for reply in run(model):
        avp = reply.response_metadata["avp"]
        print(
            f"  {avp['mode']:8} prompt {avp['prompt_tokens']}: exact {avp['reused_tokens']}, "
            f"approximate {avp['approx_reused_tokens']}, prefilled {avp['prefilled_tokens']} "
            f"({avp['recomputed_tokens']} of them recomputed)"
        )
