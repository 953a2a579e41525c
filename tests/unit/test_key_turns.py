"""Messages waiting for a publisher's slot take turns by record key (the account): one
account's thousands do not hold back another account's request read after them."""

from __future__ import annotations

from dataclasses import dataclass

from herald.shared.infra.kafka.concurrent_consumer import (
    READ_AHEAD_BYTES,
    ConcurrentConsumer,
    KeyTurns,
)


@dataclass
class Msg:
    k: bytes | None
    n: int
    part: int = 0
    header_bytes: int = 0

    def key(self) -> bytes | None:
        return self.k

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return self.part

    def value(self) -> bytes:
        return f"v-{self.n}".encode()

    def headers(self) -> list[tuple[str, bytes]] | None:
        return [("h", b"x" * self.header_bytes)] if self.header_bytes else None


def _queue(*msgs: Msg) -> KeyTurns:
    turns = KeyTurns()
    for m in msgs:
        turns.add(m)  # type: ignore[arg-type]
    return turns


def _ids(msgs: list[object]) -> list[tuple[bytes | None, int]]:
    return [(m.k, m.n) for m in msgs]  # type: ignore[attr-defined]


def test_keys_take_turns_each_in_its_order() -> None:
    turns = _queue(*[Msg(b"a", i) for i in range(5)], Msg(b"b", 0), Msg(None, 0), Msg(b"b", 1))
    assert len(turns) == 8
    first = turns.take(4)
    assert _ids(first) == [(b"a", 0), (b"b", 0), (None, 0), (b"a", 1)]
    assert _ids(turns.take(10)) == [(b"b", 1), (b"a", 2), (b"a", 3), (b"a", 4)]
    assert len(turns) == 0
    assert turns.take(3) == []


def test_a_key_that_comes_back_joins_at_the_end_of_the_round() -> None:
    turns = _queue(Msg(b"a", 0), Msg(b"a", 1), Msg(b"c", 0))
    assert _ids(turns.take(2)) == [(b"a", 0), (b"c", 0)]
    turns.add(Msg(b"c", 1))  # type: ignore[arg-type]
    assert _ids(turns.take(5)) == [(b"a", 1), (b"c", 1)]


def test_a_revoked_partitions_messages_are_dropped_the_rest_keep_their_order() -> None:
    turns = _queue(Msg(b"a", 0, part=0), Msg(b"a", 1, part=1), Msg(b"b", 0, part=1))
    turns.add(Msg(b"a", 2, part=0))  # type: ignore[arg-type]
    turns.drop([("t", 1)])
    assert len(turns) == 2
    assert _ids(turns.take(5)) == [(b"a", 0), (b"a", 2)]
    turns.drop([("t", 0)])  # nothing left: no error


def test_waiting_bytes_follow_what_is_added_taken_and_dropped() -> None:
    turns = _queue(Msg(b"ab", 0), Msg(b"ab", 1, part=1))
    assert turns.bytes == 2 * (2 + 3)  # key and value ("v-0" below)
    turns.take(1)
    assert turns.bytes == 5
    turns.drop([("t", 1)])
    assert turns.bytes == 0
    turns.add(Msg(b"", 0, header_bytes=1000))  # type: ignore[arg-type]
    assert turns.bytes == 3 + 1 + 1000  # headers count: a record may be all headers


def test_large_messages_waiting_stop_the_read_ahead() -> None:
    async def handler(_msg: object) -> bool:
        return True

    c = ConcurrentConsumer("127.0.0.1:1", "g", ["t"], handler, max_in_flight=8, read_ahead=100)
    assert c._room(free=8) == 108
    big = Msg(b"k", 0)
    big.value = lambda: b"x" * READ_AHEAD_BYTES  # type: ignore[method-assign]
    c._waiting.add(big)  # type: ignore[arg-type]
    assert c._room(free=8) == 7  # the free slots only, less what waits
    c._waiting.take(1)
    assert c._room(free=8) == 108
