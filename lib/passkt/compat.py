"""Differences between the library versions the two stacks pin (requirements.txt: CPU; requirements-gpu.txt: GPU).

transformers renamed ``TrainingArguments.gradient_checkpointing`` to ``activation_checkpointing`` between 5.17
(the newest vLLM 0.31 accepts, so the GPU stack's) and 5.23 (the CPU stack's); seen on the GPU machine, where
TRL's configs refused the new name.
"""

from __future__ import annotations

from functools import cache


@cache
def _checkpointing_name() -> str:
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def checkpointing(on: bool) -> dict:
    """The TrainingArguments keyword that turns activation (gradient) checkpointing on or off, by version."""
    return {_checkpointing_name(): bool(on)}


def checkpointing_enabled(args) -> bool:
    """Whether a TrainingArguments (or a TRL config) has activation checkpointing on, by version."""
    return bool(getattr(args, _checkpointing_name()))
