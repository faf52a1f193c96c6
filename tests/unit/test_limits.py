"""Per-client limits (kit.limits): shares, refusals with a retry delay, fair hand-out."""

from __future__ import annotations

import asyncio

import pytest

from iopcare.kit.limits import ClientLimiter, FairQueue, Throttled, peer_client


def test_a_client_over_its_share_is_refused_and_others_are_not() -> None:
    limiter = ClientLimiter(2, 1.5)
    limiter.acquire("a")
    limiter.acquire("a")
    with pytest.raises(Throttled) as caught:
        limiter.acquire("a")
    assert caught.value.retry_after_seconds == 1.5
    assert caught.value.retry_after_header == "2"
    limiter.acquire("b")
    limiter.release("a")
    limiter.acquire("a")
    assert limiter.in_flight("a") == 2


def test_no_limit_when_zero() -> None:
    limiter = ClientLimiter(0, 1)
    for _ in range(100):
        limiter.acquire("a")


def test_peer_client_drops_the_port() -> None:
    assert peer_client("ipv4:10.0.0.7:53211") == "peer:ipv4:10.0.0.7"
    assert peer_client("ipv6:[::1]:5000") == "peer:ipv6:[::1]"


def test_fair_queue_refuses_beyond_running_and_queued_shares_and_serves_in_turn() -> None:
    async def scenario() -> list[str]:
        queue = FairQueue(capacity=2, per_client=2, queued_per_client=2, retry_after_seconds=1)
        order: list[str] = []
        await queue.acquire("a")
        await queue.acquire("a")  # a holds every place

        async def waiter(client: str) -> None:
            await queue.acquire(client)
            order.append(client)

        tasks = [asyncio.create_task(waiter(c)) for c in ("a", "a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(Throttled):
            await queue.acquire("a")  # two running, two queued: its share is full
        queue.release("a")
        queue.release("a")
        await asyncio.sleep(0)
        # The two freed places went one to a, one to b (in turn), not both to a.
        assert sorted(order) == ["a", "b"]
        queue.release(order[0])
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["a", "b", "a"]


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    async def scenario() -> None:
        queue = FairQueue(capacity=1, per_client=1, queued_per_client=1, retry_after_seconds=1)
        await queue.acquire("a")
        task = asyncio.create_task(queue.acquire("a"))
        await asyncio.sleep(0)
        assert queue.queued("a") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert queue.queued("a") == 0
        queue.release("a")
        assert queue.active == 0

    asyncio.run(scenario())


def test_a_services_per_client_refusal_is_429_at_the_gateway_and_a_size_refusal_413() -> None:
    import grpc

    from iopcare.gateway.errors import GrpcFailure, from_failure

    throttled = from_failure(
        GrpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED, "share", reason="TOO_MANY_CALLS_FOR_CLIENT")
    )
    assert throttled.status == 429
    assert throttled.headers["Retry-After"] == "1"
    too_large = from_failure(
        GrpcFailure(grpc.StatusCode.RESOURCE_EXHAUSTED, "too large", reason="RESOURCE_EXHAUSTED")
    )
    assert too_large.status == 413
