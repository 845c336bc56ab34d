"""Batched write rounds: what Google's and Graph's writers share.

A write can need a second request: Google's insert meets 409 (written before) and becomes an
update; an update meets 404 (deleted externally) and becomes an insert; a Graph PATCH meets
404 and the event is created anew. So writes go out in rounds: each round sends one call per
pending item (in batches), and each answer either settles its item or names the item's next
step, for the next round. Items still pending after the last round are the caller's to report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Call = TypeVar("Call")
Answer = TypeVar("Answer")
Step = TypeVar("Step")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Next(Generic[Step]):
    """An answer that does not settle its item: take ``step`` in the next round."""

    step: Step


def send_in_batches(
    calls: Sequence[Call],
    max_batch: int,
    single: Callable[[Call], Answer],
    batch: Callable[[Sequence[Call]], list[Answer]],
) -> list[Answer]:
    """One answer per call, in order: chunks of at most ``max_batch`` go out as one batch
    request each, a chunk of one call as a plain request (a batch costs more than it)."""
    answers: list[Answer] = []
    for start in range(0, len(calls), max_batch):
        chunk = calls[start : start + max_batch]
        answers.extend([single(chunk[0])] if len(chunk) == 1 else batch(chunk))
    return answers


def run_rounds(
    first_steps: Mapping[int, Step],
    *,
    call_for: Callable[[int, Step], Call],
    send: Callable[[Sequence[Call]], list[Answer]],
    outcome: Callable[[Step, Call, Answer], Result | Next[Step]],
    rounds: int,
) -> tuple[dict[int, Result], dict[int, Step]]:
    """Up to ``rounds`` rounds over the items of ``first_steps`` (item index -> first step).
    ``call_for`` builds an item's call for its step, ``send`` answers each call in order,
    ``outcome`` settles the item or names its next step. Returns the settled items' results
    and the steps of those still pending, both by item index."""
    results: dict[int, Result] = {}
    steps = dict(first_steps)
    for _ in range(rounds):
        if not steps:
            break
        pending = sorted(steps)
        calls = [call_for(index, steps[index]) for index in pending]
        for index, call, answer in zip(pending, calls, send(calls), strict=True):
            settled = outcome(steps.pop(index), call, answer)
            if isinstance(settled, Next):
                steps[index] = settled.step
            else:
                results[index] = settled
    return results, steps
