"""Security: keys and encryption at rest, roles and principals, the audit trail's control hook,
subject requests (export, erasure), retention, recording consent and terminal-safe names.

Each module holds one job; parts import what they need from the module itself.
"""
