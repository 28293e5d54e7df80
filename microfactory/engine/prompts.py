"""Operator prompts: asked as ``prompt`` events, answered as commands, never guessed.

A :class:`PromptDesk` keeps the open prompts of the engine's loop. Asking returns a future the asking
task awaits; :meth:`PromptDesk.answer` (on the loop) resolves it. A timeout only *warns* (the engine
then holds the cell) — the question stays open until someone answers it or the lot is stopped/aborted.
"""

from __future__ import annotations

import asyncio
import itertools

from microfactory.engine.lot import Prompt
from microfactory.errors import StateError
from microfactory.events import EventBus, EventKind

#: The answer a prompt gets when the lot is stopped or aborted under it (not an operator choice).
WITHDRAWN = "withdrawn"


class PromptDesk:
    """Open prompts by id, in the order asked."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._open: dict[str, tuple[Prompt, asyncio.Future[str]]] = {}
        self._ids = itertools.count(1)

    def ask(self, text: str, choices: tuple[str, ...], reason: str, *, part: str | None = None,
            station: str | None = None, step: str | None = None, timeout_s: float | None = None,
            recommended: str | None = None) -> tuple[Prompt, asyncio.Future[str]]:
        """Publish a prompt; the future resolves with the chosen answer (or :data:`WITHDRAWN`).

        ``recommended`` must be one of ``choices``: front ends mark it, nobody picks it by itself."""
        if recommended is not None and recommended not in choices:
            raise ValueError(f"recommended answer {recommended!r} is not one of {choices}")
        prompt = Prompt(f"p{next(self._ids)}", text, choices, reason, part, station, step, timeout_s,
                        recommended)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._open[prompt.id] = (prompt, future)
        self._bus.publish(EventKind.PROMPT, "cell", **prompt.as_event())
        return prompt, future

    def answer(self, prompt_id: str, choice: str) -> Prompt:
        """Resolve an open prompt; unknown ids and choices raise :class:`StateError`."""
        if prompt_id not in self._open:
            known = ", ".join(self._open) or "none"
            raise StateError(f"no open prompt {prompt_id!r}", hint=f"open prompts: {known}")
        prompt, future = self._open[prompt_id]
        if choice not in prompt.choices:
            raise StateError(f"{choice!r} is not an answer to prompt {prompt_id} ({prompt.text!r})",
                             hint=f"answer one of: {', '.join(prompt.choices)}")
        del self._open[prompt_id]
        if not future.done():
            future.set_result(choice)
        self._bus.publish(EventKind.PROMPT_ANSWERED, "cell", id=prompt_id, answer=choice)
        return prompt

    def withdraw_all(self) -> None:
        """Stop/abort: every open question gets :data:`WITHDRAWN` (the asker leaves its part unfinished)."""
        for pid, (_prompt, future) in list(self._open.items()):
            del self._open[pid]
            if not future.done():
                future.set_result(WITHDRAWN)
            self._bus.publish(EventKind.PROMPT_ANSWERED, "cell", id=pid, answer=WITHDRAWN)

    def open(self) -> list[Prompt]:
        return [p for p, _ in self._open.values()]

    def is_open(self, prompt_id: str) -> bool:
        return prompt_id in self._open
