"""The benchmarks' N-agent chain (:class:`avp_suite.bench.workload.ChainWorkload`) in each
framework: ``langgraph``, ``crewai`` and ``autogen`` each have ``run_chain``."""
