#!/bin/sh
# Claude Code's apiKeyHelper: prints the session's FAKE key. The real key never enters this
# container; the MITM proxy swaps the fake for it on the way out.
if [ -z "${IRONCURTAIN_ANTHROPIC_FAKE_KEY:-}" ]; then
  echo "ironcurtain: no fake Anthropic key in this session (IRONCURTAIN_ANTHROPIC_FAKE_KEY)" >&2
  exit 1
fi
printf '%s\n' "$IRONCURTAIN_ANTHROPIC_FAKE_KEY"
