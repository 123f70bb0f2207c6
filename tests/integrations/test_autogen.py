"""AutoGen adapter env: the package imports next to the installed framework versions.

The adapter's own tests land with its issue; until then this checks the env is coherent.
"""

import autogen_agentchat.messages
import autogen_core
import avp_autogen

from avp_core import wire


def test_adapter_package_imports_with_its_framework():
    assert avp_autogen.__doc__
    assert autogen_agentchat.messages.BaseChatMessage
    assert autogen_core.CancellationToken


def test_wire_schema_builds_under_autogens_protobuf():
    import google.protobuf

    assert google.protobuf.__version__.startswith("5.29")
    assert wire.MAGIC == b"AV"
