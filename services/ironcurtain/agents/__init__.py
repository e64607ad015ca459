"""Agent adapters: what it takes to run one coding agent inside the curtain."""
