"""The escalation channel: the MCP proxy asks, a human decides, the waiting call resumes."""
