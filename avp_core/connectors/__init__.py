"""Model connectors: run a model for agents and produce/consume AVPContexts."""
