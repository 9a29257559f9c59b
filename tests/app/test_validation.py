"""The validation processes: a request's time budget counts from when its process can read it,
a request over its budget costs only its process, and a process that dies as it starts is a 503
(ValidatorBusy), not an error of the request."""

import asyncio
import json
import pathlib
import time

import pytest

from app.validation import INLINE_MAX_BYTES, Validator, ValidatorBusy
from worker.simulation.errors import InvalidRequest
from worker.simulation.limits import Limits

SEED = json.loads((pathlib.Path(__file__).parents[2] / "examples" / "seed.json").read_text())


def seed_with_steps(steps: int) -> bytes:
    """The seed request with an input tensor of ``steps`` x 5 numbers."""
    data = [[0.25, -0.5, 0.125, 1.0, 0.75]] * steps
    return json.dumps({**SEED, "input": {"type": "tensor", "shape": [steps, 5], "data": data}}).encode()


SMALL = seed_with_steps(3_000)  # above INLINE_MAX_BYTES: validated in a process, in about 10 ms
LARGE = seed_with_steps(400_000)  # about 1 s to validate quiet


def test_the_requests_sizes_take_the_process_path() -> None:
    assert INLINE_MAX_BYTES < len(SMALL) < len(LARGE)


def test_a_new_processs_start_up_is_not_counted_in_the_requests_budget() -> None:
    """A budget of 0.2 s, 20 times what the request takes but less than the process's imports
    (0.8 s here): the first request still passes (it was refused when the start-up counted)."""

    async def first_check() -> tuple[float, int]:
        validator = Validator(Limits(), processes=1, timeout_s=0.2)
        try:
            started = time.perf_counter()
            validated = await validator.check(SMALL)
            return time.perf_counter() - started, validated.steps
        finally:
            await validator.aclose()

    elapsed, steps = asyncio.run(first_check())
    assert steps == 3_000
    assert elapsed > 0.2, "the process started within the budget: the case is not exercised"


def test_a_request_over_its_budget_is_refused_and_the_next_is_validated() -> None:
    async def over_then_small() -> tuple[InvalidRequest, int]:
        validator = Validator(Limits(), processes=1, timeout_s=0.2)
        try:
            await validator.check(SMALL)  # the process started and warm
            with pytest.raises(InvalidRequest) as refused:
                await validator.check(LARGE)
            return refused.value, (await validator.check(SMALL)).steps
        finally:
            await validator.aclose()

    refused, steps = asyncio.run(over_then_small())
    assert refused.errors[0].msg == "the request took longer than 0.2 s to validate; it is too large or too complex"
    assert steps == 3_000


def test_a_process_that_ends_as_it_starts_makes_a_busy_answer_and_is_replaced() -> None:
    async def killed_at_start() -> tuple[ValidatorBusy, int]:
        validator = Validator(Limits(), processes=1, timeout_s=10)
        try:
            check = asyncio.ensure_future(validator.check(SMALL))
            while not validator._children:  # spawned by the first check
                await asyncio.sleep(0.001)
            next(iter(validator._children)).kill()  # before its imports are done (they take ~1 s)
            with pytest.raises(ValidatorBusy) as busy:
                await check
            return busy.value, (await validator.check(SMALL)).steps
        finally:
            await validator.aclose()

    busy, steps = asyncio.run(killed_at_start())
    assert str(busy) == "a new validation process ended as it started (the server's log says why)"
    assert steps == 3_000
