"""The registrar: on a team server, makes the per-session Redis users of other machines' sessions.

A joined machine holds no Redis admin credential (a user that may `ACL SETUSER` may give itself
everything). It asks here, with its member's token, for a user for one new session; the registrar,
the one container that holds the admin credential, makes it with the fixed session rules and
returns the password once. See app.py and docs/threat-model.md.
"""
