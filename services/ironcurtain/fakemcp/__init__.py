"""A reference MCP backend written with the MCP Python SDK: what the conformance suite's server
scenarios ask of a server (tools of every content type, logging, progress, sampling,
elicitation, resources, templates, prompts, completion), for tests of the proxy."""
