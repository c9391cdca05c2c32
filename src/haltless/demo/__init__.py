"""The simulated fleet behind `haltless demo` (and the agent's simulator source)."""
