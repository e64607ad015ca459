"""The Docker socket proxy: an HAProxy allowlist rendered from Tecnativa-style switches.

`settings` parses the environment, `rules` turns it into exact method+path rules, `render` writes
the haproxy.cfg; `__main__` does the I/O at container start and execs HAProxy.
"""
