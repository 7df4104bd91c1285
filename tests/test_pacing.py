"""Providers' rate limits paced on our side: excess messages wait their turn, in order."""

from __future__ import annotations

import asyncio

from notifier.adapters.pacing import KeyedPacer, by_sender
from notifier.domain.model import Channel, OutboundMessage


def text(n: int, sender: str = "+15555550100") -> OutboundMessage:
    return OutboundMessage(
        delivery_id=f"d-{n}",
        message_id="msg-1",
        conversation_id="conv-1",
        recipient_id=f"r-{n}",
        channel=Channel.SMS,
        to="+15555550123",
        language="en",
        sender_address=sender,
    )


async def test_messages_over_the_rate_wait_and_go_in_the_order_they_came() -> None:
    pacer = KeyedPacer(50.0, by_sender)
    finished: list[int] = []

    async def send(n: int) -> None:
        await pacer.wait_turn(text(n))
        finished.append(n)

    first = asyncio.create_task(send(0))
    await first
    waiting = [asyncio.create_task(send(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    assert finished == [0], "the bucket holds one message: the rest wait"
    await asyncio.gather(*waiting)
    assert finished == [0, 1, 2, 3, 4, 5]


async def test_each_sending_number_has_its_own_rate() -> None:
    pacer = KeyedPacer(0.001, by_sender)  # one message per 1000 s per number
    await pacer.wait_turn(text(1, sender="+15555550100"))
    # Another number is not held up by the first one's spent bucket.
    await asyncio.wait_for(pacer.wait_turn(text(2, sender="+15555550101")), timeout=5)
    second_on_first = asyncio.create_task(pacer.wait_turn(text(3, sender="+15555550100")))
    await asyncio.sleep(0.05)
    assert not second_on_first.done()
    second_on_first.cancel()
