"""The approval service: a human sees pending escalations and decides (Flask, served by gunicorn).

`app.create_app(test_config=None)` builds it. The package face imports nothing: the CLI imports
this package for every command (`ironcurtain approve`, and the proxies' own start-up), and Flask
with its views took a fifth of a second of CPU to import there.
"""
