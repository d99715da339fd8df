"""The dialogue part: playbooks, the per-call stage machine, extraction, tools, scoring, booking."""
