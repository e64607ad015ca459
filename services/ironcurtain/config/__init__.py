"""The host settings (docs/operations.md): one loader for make and the CLI."""
