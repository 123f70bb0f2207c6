"""avp_suite: the application around the library: the ``avp-suite`` command, the demo and the
benchmarks (text vs latent side by side), with the N-agent chain each framework runs.

:mod:`avp_core` and the adapters (``avp_langgraph``, ``avp_crewai``, ``avp_autogen``) never
import it; it imports them. The benchmarks' plotting needs ``avp-suite[bench]``.
"""
