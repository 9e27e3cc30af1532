"""In-process event bus: synchronous, non-blocking fan-out of domain events, and their wire format.

Domains (acd, dialer, recordings) describe what happened as small frozen dataclasses and hand
them to ``EventBus.publish``, which is called from SIP and ACD code on the event loop and so
never awaits and never blocks. Subscribers are either synchronous callbacks (the queue log
writer, the MQTT bridge's buffer) run inline, or async iterators with a bounded queue each; a
slow async subscriber loses its oldest events, counted in ``Subscription.dropped``, and never
slows the publisher. This module also owns the serialisation contract shared by MQTT and any
other sink: ``topic_for`` (an event class may declare ``__topic__`` and ``__retain__``) and
``to_payload`` / ``encode`` (JSON with ``schema``, ``type``, ``ts`` and ``data``).

Theory of operation: ``publish`` appends to a pending deque and, unless a dispatch is already
running further up the stack, drains it. A listener that publishes from inside its callback
therefore does not overtake the event it is reacting to: every subscriber sees one global order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import math
import string
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import structlog

__all__ = [
    "DEFAULT_TOPIC",
    "SCHEMA_VERSION",
    "Event",
    "EventBus",
    "EventTypes",
    "Subscription",
    "encode",
    "retain_for",
    "to_payload",
    "topic_for",
]

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
"""Version of the payload envelope; bump when ``to_payload``'s shape changes incompatibly."""

DEFAULT_TOPIC = "events/{type}"
"""Topic of an event class that declares no ``__topic__``."""

# Characters with a meaning in MQTT topic names; a field value used as a topic level must not
# smuggle in an extra level or a wildcard, so they are replaced.
_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


class Event(Protocol):
    """Any dataclass instance; the bus checks on first sight of a class that it is frozen."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


EventTypes = type | tuple[type, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _EventClass:
    name: str
    topic: str
    topic_fields: tuple[str, ...]
    retain: bool


_classes: dict[type, _EventClass] = {}


def _describe(cls: type) -> _EventClass:
    """Validate an event class once and cache what the bus and the bridges need to know of it."""
    info = _classes.get(cls)
    if info is not None:
        return info
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__qualname__} is not an event: declare it as @dataclass(frozen=True, slots=True)")
    if not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"event {cls.__qualname__} must be immutable: declare it with @dataclass(frozen=True)")
    field_names = {f.name for f in dataclasses.fields(cls)}
    template = getattr(cls, "__topic__", DEFAULT_TOPIC)
    if not isinstance(template, str) or not template:
        raise TypeError(
            f"{cls.__qualname__}.__topic__ must be a non-empty format string like 'agents/{{agent_id}}/state'"
        )
    if template.startswith("/") or template.endswith("/") or "//" in template or "+" in template or "#" in template:
        raise TypeError(
            f"{cls.__qualname__}.__topic__ = {template!r} is not a valid MQTT topic: "
            "no leading, trailing or doubled '/', and no wildcards '+' or '#'"
        )
    placeholders: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TypeError(f"{cls.__qualname__}.__topic__ = {template!r} is not a valid format string: {exc}") from None
    for _literal, name, _spec, _conv in parsed:
        if name is None:
            continue
        if name != "type" and name not in field_names:
            raise TypeError(
                f"{cls.__qualname__}.__topic__ = {template!r} names {{{name}}}, which is not a field of the event; "
                f"use one of {sorted(field_names)} or {{type}}"
            )
        placeholders.append(name)
    retain = getattr(cls, "__retain__", False)
    if not isinstance(retain, bool):
        raise TypeError(f"{cls.__qualname__}.__retain__ must be True or False, not {retain!r}")
    info = _EventClass(name=cls.__name__, topic=template, topic_fields=tuple(placeholders), retain=retain)
    _classes[cls] = info
    return info


def _topic_level(value: object) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    text = str(value).translate(_TOPIC_UNSAFE)
    return text or "_"


def topic_for(event: Event) -> str:
    """The event's topic below the site prefix, e.g. ``agents/1001/state`` or ``events/CallQueued``.

    Field values are used as single topic levels: '/', '+', '#' in them become '_'.
    """
    info = _describe(type(event))
    if not info.topic_fields:
        return info.topic
    values = {name: (info.name if name == "type" else _topic_level(getattr(event, name))) for name in info.topic_fields}
    return info.topic.format_map(values)


def retain_for(event: Event) -> bool:
    """Whether the event is current state (retained on the broker) rather than a happening."""
    return _describe(type(event)).retain


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        # No offset to convert from; the project stores UTC, but a naive value is shown as given.
        return moment.isoformat()
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(value: object, where: str) -> Any:
    """Turn a field value into plain JSON types; ``where`` names the field for the error message."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, enum.Enum):  # IntEnum / StrEnum: send the value, not the member
            return value.value
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; a metric with no data yet is better sent as null.
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | uuid.UUID | PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, set | frozenset):
        items = [_jsonable(v, f"{where}[]") for v in value]
        return sorted(items, key=repr)
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(
        f"event field {where} holds a {type(value).__qualname__}, which has no JSON form; "
        "use str, int, float, bool, datetime, Enum, a dataclass, or a list/dict of those"
    )


def to_payload(event: Event, *, ts: datetime | None = None) -> dict[str, Any]:
    """The JSON-ready envelope of an event.

    ``{"schema": 1, "type": "<class name>", "ts": "<UTC ISO 8601>", "data": {<fields>}}``.
    ``ts`` is when the event was published (pass the time captured at publish); it defaults
    to now. Datetimes become ISO 8601 (aware ones in UTC with 'Z'), enums their value,
    timedeltas seconds, non-finite floats null.
    """
    info = _describe(type(event))
    moment = ts if ts is not None else datetime.now(UTC)
    data = {f.name: _jsonable(getattr(event, f.name), f"{info.name}.{f.name}") for f in dataclasses.fields(event)}
    return {"schema": SCHEMA_VERSION, "type": info.name, "ts": _iso(moment), "data": data}


def encode(event: Event, *, ts: datetime | None = None) -> bytes:
    """``to_payload`` as compact UTF-8 JSON bytes."""
    return json.dumps(to_payload(event, ts=ts), separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _check_types(types: EventTypes | None) -> tuple[type, ...] | None:
    if types is None:
        return None
    classes = types if isinstance(types, tuple) else (types,)
    for cls in classes:
        if not isinstance(cls, type):
            raise TypeError(f"types must be event classes, got {cls!r}")
        _describe(cls)
    return classes


Listener = Callable[[Any], None]


class Subscription:
    """An async subscriber's bounded queue; iterate it with ``async for``.

    Created registered (events published after ``EventBus.subscribe`` returns are queued even
    before iteration starts). When full, the oldest event is dropped and ``dropped`` counts it.
    Iteration ends after ``close()`` (or ``EventBus.close()``) once the queue is drained. The
    bus holds subscriptions weakly, so a forgotten one goes away with its last reference; use
    it as a context manager to unsubscribe promptly.
    """

    _WARN_EVERY = 1000

    def __init__(self, bus: EventBus, types: tuple[type, ...] | None, maxsize: int) -> None:
        self._bus = bus
        self.types = types
        self.maxsize = maxsize
        self.dropped = 0
        self._queue: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _offer(self, event: Event) -> None:
        if self._closed:
            return
        queue = self._queue
        if len(queue) >= self.maxsize:
            queue.popleft()
            self.dropped += 1
            if self.dropped % self._WARN_EVERY == 1:
                log.warning(
                    "slow event subscriber: dropping oldest events",
                    dropped=self.dropped,
                    maxsize=self.maxsize,
                    types=[t.__name__ for t in self.types] if self.types else None,
                )
        queue.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Any | None:
        """The next queued event, or None if there is none."""
        return self._queue.popleft() if self._queue else None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        """Unsubscribe; a running ``async for`` ends after the events already queued."""
        if not self._closed:
            self._closed = True
            self._bus._discard(self)
            self._wake()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EventBus:
    """Publish/subscribe of domain events inside one process.

    ``publish`` is synchronous: listeners run inline (keep them short and non-blocking; an
    exception in one is logged and does not reach the publisher or the other listeners), and
    async subscribers get the event queued. Only call it from the event loop's thread.
    """

    def __init__(self, *, default_maxsize: int = 1000) -> None:
        if default_maxsize < 1:
            raise ValueError(f"default_maxsize must be at least 1, got {default_maxsize}")
        self.default_maxsize = default_maxsize
        self.published = 0
        self.listener_errors = 0
        self._listeners: tuple[tuple[Listener, tuple[type, ...] | None], ...] = ()
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._pending: deque[Any] = deque()
        self._dispatching = False
        self._closed = False

    def publish(self, event: Event) -> None:
        """Hand an event to every matching listener and subscriber; never blocks, never awaits.

        Raises TypeError if the event's class is not a frozen dataclass or its ``__topic__``
        is malformed (checked once per class).
        """
        _describe(type(event))
        if self._closed:
            return
        self.published += 1
        self._pending.append(event)
        if self._dispatching:
            return  # a listener published from inside dispatch: it is delivered after the current event
        self._dispatching = True
        try:
            while self._pending:
                self._dispatch(self._pending.popleft())
        finally:
            self._dispatching = False

    def _dispatch(self, event: Event) -> None:
        for callback, types in self._listeners:
            if types is None or isinstance(event, types):
                try:
                    callback(event)
                except Exception:
                    self.listener_errors += 1
                    log.exception("event listener failed", listener=repr(callback), event_type=type(event).__name__)
        if self._subscriptions:
            for subscription in tuple(self._subscriptions):
                if subscription.types is None or isinstance(event, subscription.types):
                    subscription._offer(event)

    def add_listener(self, callback: Listener, *, types: EventTypes | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` inline for every matching event; returns a function that removes it."""
        classes = _check_types(types)
        entry = (callback, classes)
        self._listeners = (*self._listeners, entry)

        def remove() -> None:
            self._listeners = tuple(e for e in self._listeners if e is not entry)

        return remove

    def subscribe(self, *, types: EventTypes | None = None, maxsize: int | None = None) -> Subscription:
        """A bounded async stream of matching events: ``async for event in bus.subscribe(...)``."""
        size = self.default_maxsize if maxsize is None else maxsize
        if size < 1:
            raise ValueError(f"maxsize must be at least 1, got {size}")
        subscription = Subscription(self, _check_types(types), size)
        if self._closed:
            subscription.close()
        else:
            self._subscriptions.add(subscription)
        return subscription

    def _discard(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._listeners) + len(self._subscriptions)

    def close(self) -> None:
        """Stop accepting events and end every subscription's iteration once drained."""
        self._closed = True
        for subscription in tuple(self._subscriptions):
            subscription.close()
        self._listeners = ()
