"""The dispatch loops send in the order of their claims, and a claim that never sends (it
found nothing, or failed, or was cancelled) holds no later one back."""

from __future__ import annotations

import asyncio

from herald.services.scheduler.dispatcher import ClaimOrder


async def _sender(order: ClaimOrder, ticket: int, sent: list[int]) -> None:
    try:
        await order.turn(ticket)
        sent.append(ticket)
    finally:
        order.finish(ticket)


async def test_each_ticket_sends_after_every_earlier_one_finished() -> None:
    order, sent = ClaimOrder(), list[int]()
    tickets = [order.ticket() for _ in range(3)]
    later = [asyncio.create_task(_sender(order, t, sent)) for t in reversed(tickets[1:])]
    await asyncio.sleep(0.01)
    assert sent == []  # ticket 0 has not finished
    await _sender(order, tickets[0], sent)
    await asyncio.gather(*later)
    assert sent == [0, 1, 2]


async def test_a_ticket_finished_without_sending_hands_the_turn_on() -> None:
    order, sent = ClaimOrder(), list[int]()
    failed, empty, sender = order.ticket(), order.ticket(), order.ticket()
    waiting = asyncio.create_task(_sender(order, sender, sent))
    order.finish(empty)  # out of order: the failed claim before it still has the turn
    await asyncio.sleep(0.01)
    assert sent == []
    order.finish(failed)
    order.finish(failed)  # finishing twice is harmless
    await asyncio.wait_for(waiting, 1)
    assert sent == [sender]


async def test_a_cancelled_waiter_hands_the_turn_on() -> None:
    order, sent = ClaimOrder(), list[int]()
    first, cancelled, last = order.ticket(), order.ticket(), order.ticket()
    stuck = asyncio.create_task(_sender(order, cancelled, sent))
    waiting = asyncio.create_task(_sender(order, last, sent))
    await asyncio.sleep(0.01)
    stuck.cancel()
    order.finish(first)
    await asyncio.wait_for(waiting, 1)
    assert sent == [last]
