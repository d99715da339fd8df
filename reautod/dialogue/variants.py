"""A/B variants: which arm a lead gets (stable everywhere), and the playbook that arm runs.

Assignment hashes the playbook name and the lead's id with SHA-256 (not Python's `hash`, which
changes per process) into a number in [0, 1) and walks the cumulative weights. So a lead gets
the same variant on every call, in every process, on every box, for as long as the weights stay
the same; a variant of weight 0 is never assigned (a way to stop an arm without deleting it).
"""

from __future__ import annotations

import hashlib

from reautod.dialogue.playbook import Playbook, Stage, Variant


def bucket(playbook: str, lead_key: str) -> float:
    """The lead's fixed point in [0, 1) for this playbook."""
    digest = hashlib.sha256(f"{playbook}\x00{lead_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(playbook: Playbook, lead_key: str) -> Variant:
    """The variant `lead_key` (a lead or contact id) runs under `playbook`."""
    total = sum(v.weight for v in playbook.variants)
    point = bucket(playbook.playbook, lead_key) * total
    upto = 0
    for variant in playbook.variants:
        upto += variant.weight
        if variant.weight and point < upto:
            return variant
    return next(v for v in reversed(playbook.variants) if v.weight)  # float edge at the top


def apply_variant(playbook: Playbook, variant: Variant) -> Playbook:
    """`playbook` as `variant` says it: its system prompt and stage overrides applied."""
    stages: dict[str, Stage] = {}
    for name, stage in playbook.stages.items():
        override = variant.stages.get(name)
        if override is None:
            stages[name] = stage
            continue
        changes = {k: v for k, v in override.model_dump(exclude_unset=True).items() if v is not None}
        stages[name] = stage.model_copy(update=changes)
    update: dict[str, object] = {"stages": stages}
    if variant.system_prompt is not None:
        update["system_prompt"] = variant.system_prompt
    return playbook.model_copy(update=update)
