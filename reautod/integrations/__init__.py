"""Results out: the webhook outbox and its delivery worker, incoming lead/DNC endpoints, streamed
exports (JSON, CSV, XML), calendar booking on CalDAV with SMS/email confirmations, and Google
Sheets (contacts in, call results out).

Settings are in `settings.IntegrationsSettings` (the `[integrations]` table); secrets are systemd
credentials read by `credentials.Credentials`. See docs/integrations.md.
"""
