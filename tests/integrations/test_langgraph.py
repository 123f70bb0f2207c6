"""LangGraph adapter env: the package imports next to the installed framework versions.

The adapter's own tests land with its issue; until then this checks the env is coherent.
"""

import avp_langgraph
import langchain_core
import langgraph.graph


def test_adapter_package_imports_with_its_framework():
    assert avp_langgraph.__doc__
    assert langgraph.graph.StateGraph
    assert langchain_core.__version__
