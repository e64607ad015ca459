"""A backend's notifications reach only the stream they belong to: progress by the token the
proxy handed out for a request in flight, logs only while one request is in flight, updates only
to the sessions that subscribed to that URI; anything else, and anything odd, is dropped."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from ironcurtain.mcpproxy.streams import Listener, Router


def drained(listener: Listener) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        listener.close()
        out = []
        with anyio.fail_after(5):
            while (event := await listener.next()) is not None:
                out.append(event)
        return out

    return anyio.run(go)


def progress(token: object, value: int = 1) -> dict[str, Any]:
    return {
        "method": "notifications/progress",
        "params": {"progressToken": token, "progress": value},
    }


def log(text: str = "hello") -> dict[str, Any]:
    return {"method": "notifications/message", "params": {"level": "info", "data": text}}


def test_progress_goes_to_its_own_request_under_the_clients_token() -> None:
    router = Router()
    mine, theirs = Listener("client-a"), Listener("client-b")
    with router.forwarding(mine) as meta_a, router.forwarding(theirs) as meta_b:
        assert meta_a is not None
        assert meta_b is not None
        ours_a, ours_b = meta_a["progressToken"], meta_b["progressToken"]
        assert ours_a != ours_b
        assert "client-a" not in ours_a
        router.deliver(progress(ours_a, 1))
        router.deliver(progress(ours_b, 2))
        # A backend naming a client's own token, a guessed one, or a number: nobody's.
        for token in ("client-a", "client-b", "ic-guess", 1, None):
            router.deliver(progress(token))
    router.deliver(progress(ours_a, 3))  # after the call: its token is gone
    assert [e["params"] for e in drained(mine)] == [{"progressToken": "client-a", "progress": 1}]
    assert [e["params"] for e in drained(theirs)] == [{"progressToken": "client-b", "progress": 2}]
    assert router.dropped == 6


def test_a_request_without_a_token_sends_none_to_the_backend() -> None:
    router = Router()
    with router.forwarding(Listener(None, "info")) as meta:
        assert meta is None
    with router.forwarding(None) as meta:
        assert meta is None


def test_logs_go_to_the_only_request_in_flight_that_asked_for_them() -> None:
    router = Router()
    asked = Listener(None, "info")
    with router.forwarding(asked):
        router.deliver(log("one in flight"))
        with router.forwarding(None):  # another client's call on the same backend
            router.deliver(log("whose is this?"))
        with router.forwarding(Listener(None, "info")):
            router.deliver(log("two asked: whose?"))
        router.deliver(log("one again"))
    router.deliver(log("none in flight"))
    quiet = Listener("t")  # asked for progress, not logs
    with router.forwarding(quiet):
        router.deliver(log("not asked"))
    assert [e["params"]["data"] for e in drained(asked)] == ["one in flight", "one again"]
    assert drained(quiet) == []


def test_updates_reach_only_the_sessions_that_subscribed_to_that_uri() -> None:
    router = Router()
    a, b = Listener(), Listener()
    router.watch("test://a", a)
    router.watch("test://a", a)  # twice: once
    router.watch("test://b", b)
    for uri in ("test://a", "test://b", "test://c", "TEST://a", "test://a/"):
        router.deliver({"method": "notifications/resources/updated", "params": {"uri": uri}})
    assert router.unwatch("test://a", a)
    assert not router.unwatch("test://a", a)
    assert not router.watched("test://a")
    router.deliver({"method": "notifications/resources/updated", "params": {"uri": "test://a"}})
    router.forget(b)
    router.deliver({"method": "notifications/resources/updated", "params": {"uri": "test://b"}})
    assert [e["params"]["uri"] for e in drained(a)] == ["test://a"]
    assert [e["params"]["uri"] for e in drained(b)] == ["test://b"]


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"method": 5},
        {"method": "notifications/progress"},
        {"method": "notifications/progress", "params": []},
        {"method": "notifications/message", "params": "x"},
        {"method": "notifications/resources/updated", "params": None},
        {"method": "notifications/tools/list_changed", "params": {}},
        {"method": "sampling/createMessage", "params": {}},
    ],
)
def test_odd_or_unknown_notifications_are_dropped(message: dict[str, Any]) -> None:
    router = Router()
    listener = Listener("t", "debug")
    router.watch("test://a", listener)
    with router.forwarding(listener):
        router.deliver(message)
    assert router.dropped == 1
    assert drained(listener) == []


def test_a_stream_holds_a_bounded_number_of_events() -> None:
    listener = Listener("t", max_events=3)
    for n in range(1000):
        listener.offer({"n": n})
    assert [e["n"] for e in drained(listener)] == [0, 1, 2]
    assert listener.dropped == 997
    listener.offer({"n": "late"})  # closed: dropped
    assert listener.dropped == 998


def test_a_backends_request_goes_to_the_one_call_that_can_answer_it_or_to_none() -> None:
    seen: list[Any] = []

    async def decide(method: str, params: Any, listener: Listener | None) -> dict[str, Any]:
        seen.append(listener)
        return {"result": {}}

    async def ask(method: str, params: dict[str, Any]) -> Any:
        return {}

    async def go() -> list[dict[str, Any]]:
        router = Router()
        request = {"method": "sampling/createMessage", "params": {}}
        replies = [await router.serve(request)]  # no gate wired: not carried
        router.on_request = decide
        able = Listener(None, capabilities=frozenset({"sampling/createMessage"}), ask=ask)
        with router.forwarding(able):
            replies.append(await router.serve(request))
            with router.forwarding(None):  # another call meanwhile: whose is it?
                replies.append(await router.serve(request))
        with router.forwarding(Listener("t")):  # a call whose client cannot answer
            replies.append(await router.serve(request))
        replies.append(await router.serve({"method": "roots/list", "params": {}}))
        return replies

    replies = anyio.run(go)
    assert replies[0]["error"]["code"] == -32601
    assert replies[-1]["error"]["code"] == -32601
    assert len(seen) == 3
    assert seen[0] is not None
    assert seen[1:] == [None, None]


def test_a_calls_stream_takes_a_bounded_number_of_events_in_all() -> None:
    async def go() -> tuple[int, int]:
        listener = Listener("t", max_events=10, max_total=25)
        taken = 0
        for _ in range(10):  # drained as it goes: only the total bounds it
            for n in range(10):
                listener.offer({"n": n})
            while listener._queue:  # what the stream writes meanwhile
                await listener.next()
                taken += 1
        return taken, listener.dropped

    assert anyio.run(go) == (25, 75)


class _Renewing:
    """A backend session that records what it is asked (a stand-in for a restarted child)."""

    def __init__(self, asked: list[tuple[str, dict[str, Any]]], up: anyio.Event) -> None:
        self.asked = asked
        self.up = up

    async def __aenter__(self) -> _Renewing:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def list_tools(self, cursor: str | None = None) -> Any:
        import mcp_types as types

        return types.ListToolsResult(tools=[])

    async def request(self, method: str, params: dict[str, Any], timeout_s: float) -> Any:
        self.asked.append((method, params))
        self.up.set()
        return {}


def test_a_restarted_backend_is_subscribed_again_to_what_sessions_still_watch() -> None:
    from ironcurtain.mcpproxy.backend import Backend
    from ironcurtain.mcpproxy.config import BackendSpec

    async def go() -> list[tuple[str, dict[str, Any]]]:
        asked: list[tuple[str, dict[str, Any]]] = []
        up = anyio.Event()
        backend = Backend(BackendSpec("ref", command="unused"))
        backend._session = lambda: _Renewing(asked, up)  # type: ignore[method-assign]
        watching, gone = Listener(), Listener()
        backend.router.watch("test://watched", watching)
        backend.router.watch("test://gone", gone)
        backend.router.forget(gone)  # its session ended: not renewed
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(backend.run)
                await up.wait()
                tg.cancel_scope.cancel()
        return asked

    assert anyio.run(go) == [("resources/subscribe", {"uri": "test://watched"})]
