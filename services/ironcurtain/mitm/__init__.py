"""The MITM proxy: the agent's only way to an LLM, with keys it never holds.

Entry points for session orchestration:
- `settings.parse(doc)` / `settings.load(path)` -> `Settings` (see settings.py for the format);
- `fake_keys.new_fake_key(prefix)` for the fake keys the agent gets;
- `ca.init(dir, hosts)` once, then the proxy reads `ca.pem` + `ca-key.pem` from `Settings.ca_dir`;
- `app.running(settings)` (async context manager) or `ironcurtain mitm serve --config FILE`.
"""
