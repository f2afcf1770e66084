"""Work queue semantics: de-duplication, one worker per key, requeue on done, backoff, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from provisioner.controlplane.client.workqueue import ExponentialBackoff, WorkQueue


def run(coro):
    return asyncio.run(coro)


def test_repeated_adds_of_a_waiting_key_collapse_into_one():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue()
        for key in ("a", "b", "a", "a", "b"):
            queue.add(key)
        assert len(queue) == 2
        assert [await queue.get(), await queue.get()] == ["a", "b"]

    run(scenario())


def test_key_added_while_processing_is_not_handed_out_until_done():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        held = await queue.get()
        queue.add("a")
        assert len(queue) == 0, "a key in flight must not be given to a second worker"
        queue.done(held)
        assert len(queue) == 1
        assert await queue.get() == "a"

    run(scenario())


def test_done_without_new_add_does_not_requeue():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.done(await queue.get())
        assert len(queue) == 0

    run(scenario())


def test_waiting_worker_wakes_when_a_key_arrives():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue()
        worker = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not worker.done()
        queue.add("x")
        assert await worker == "x"

    run(scenario())


def test_shutdown_releases_waiting_workers_and_ignores_new_keys():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue()
        worker = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        queue.shutdown()
        assert await worker is None
        queue.add("late")
        assert len(queue) == 0
        assert await queue.get() is None

    run(scenario())


def test_add_after_zero_delay_adds_immediately():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 0)
        assert await queue.get() == "a"

    run(scenario())


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 0.005), (2, 0.01), (3, 0.02), (11, 5.12), (30, 300.0)],
    ids=["first-failure-base", "second-doubles", "third-doubles-again", "eleventh", "capped"],
)
def test_backoff_doubles_per_failure_up_to_cap(failures, expected):
    backoff: ExponentialBackoff[str] = ExponentialBackoff(base=0.005, cap=300)
    delays = [backoff.when("k") for _ in range(failures)]
    assert delays[-1] == pytest.approx(expected)
    assert backoff.num_requeues("k") == failures


def test_forget_resets_backoff_of_one_key_only():
    backoff: ExponentialBackoff[str] = ExponentialBackoff(base=1, cap=100)
    for _ in range(3):
        backoff.when("a")
    backoff.when("b")
    backoff.forget("a")
    assert backoff.when("a") == 1
    assert backoff.num_requeues("b") == 1


def test_rate_limited_add_counts_requeues_and_forget_clears_them():
    async def scenario():
        queue: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=1000, cap=1000))
        queue.add_rate_limited("a")
        queue.add_rate_limited("a")
        assert queue.num_requeues("a") == 2
        assert len(queue) == 0, "a retry waits for its backoff"
        queue.forget("a")
        assert queue.num_requeues("a") == 0
        queue.shutdown()

    run(scenario())
