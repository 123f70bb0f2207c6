"""LangGraph quickstart: a planner and a critic on one local model; the critic reuses KV."""

from avp_langgraph import AVPChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from avp_core import HuggingFaceConnector

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # built-in, offline
model = AVPChatModel(connector=connector, max_new_tokens=24)


def agent(instruction: str):
    def node(state: MessagesState) -> dict:
        turn = HumanMessage(instruction)  # the role comes last, after the shared history
        return {"messages": [turn, model.invoke([*state["messages"], turn])]}

    return node


graph = StateGraph(MessagesState)
graph.add_sequence([("planner", agent("Write a plan.")), ("critic", agent("Criticise it."))])
graph.add_edge(START, "planner")
state = graph.compile().invoke({"messages": [HumanMessage("Three days in Lisbon.")]})
for reply in state["messages"][2::2]:
    avp = reply.response_metadata["avp"]
    print(avp["mode"], avp["reused_tokens"], "reused,", avp["prefilled_tokens"], "prefilled")
