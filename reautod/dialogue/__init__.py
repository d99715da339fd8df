"""The dialogue part: playbooks, the per-call stage machine, extraction, tools, scoring, booking.

What the rest of reautod uses:
- `playbook_file.load_playbook_file` / `parse_playbook` -> `LoadedPlaybook` (version, content),
  `library.PlaybookLibrary` (a directory of playbooks);
- `agent.AgentFactory(...).start(call, playbook, scheduler=...)` -> `CallAgent`, whose
  `opening()`, `respond(text)`, `heard(reply_id, text)` and `end(cause)` are the in-call API
  (replies and results in `replies`), with the ports it needs in `ports`;
- `scheduling.Scheduler` (booking interface) and `slots.CampaignSlots` (the campaign's slots);
- `cache.ResponseCache` (approved lines and their audio), `effects` (store-backed ports),
  `control.dialogue_methods` (`playbook.*` on the control socket, results in `results`).
"""
