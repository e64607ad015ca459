"""A stand-in for LLM vendors' APIs (Anthropic and OpenAI wire formats), for tests and benchmarks.

It speaks real HTTPS with a certificate of its own, answers JSON and SSE, and sends error bodies
in each vendor's shape. It records what it received so tests can check what the vendor saw.
"""
