"""Two agents on one model: the second continues the first's KV-cache (offline, seconds).

Run: python examples/quickstart.py
"""

from avp_core import AVPContext, HuggingFaceConnector

connector = HuggingFaceConnector.from_pretrained("tiny-qwen2")  # built-in, offline

# Agent A reads a plan and answers; its Generation carries text + an AVPContext.
analyst = connector.generate(
    [
        {"role": "system", "content": "You are an analyst."},
        {"role": "user", "content": "Plan: early train, museum, dinner by the lake. Risks?"},
    ],
    max_new_tokens=32,
)
print("A:", analyst.usage.prefilled_tokens, "tokens prefilled")

# Agent B continues A's context (handoff layout): only B's new turn is prefilled.
critic = connector.generate(
    [{"role": "system", "content": "You are a critic. Name the weakest point."}],
    context=analyst.context,
    layout="handoff",
    max_new_tokens=32,
)
print("B:", critic.usage.reused_tokens, "reused,", critic.usage.prefilled_tokens, "prefilled")

# Contexts travel as AVP wire bytes (no pickle) and behave the same after the trip.
restored = AVPContext.from_bytes(analyst.context.to_bytes())
again = connector.generate(
    [{"role": "system", "content": "You are a critic. Name the weakest point."}],
    context=restored,
    layout="handoff",
    max_new_tokens=32,
)
print("same answer after the wire:", again.text == critic.text)
