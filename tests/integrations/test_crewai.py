"""CrewAI adapter env: the package imports next to the installed framework version.

The adapter's own tests land with its issue; until then this checks the env is coherent.
"""

import avp_crewai
import crewai


def test_adapter_package_imports_with_its_framework():
    assert avp_crewai.__doc__
    assert crewai.Crew and crewai.Agent and crewai.Task
