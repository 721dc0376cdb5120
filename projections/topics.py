"""Which stored events a projection reads: decoding the others (logins, claims, ...) is wasted work.

A projection's `apply` is a singledispatchmethod whose fallback ignores an event; an event class
that dispatches to nothing but that fallback need not be decoded at all. The answer is worked out
once per topic, from the same dispatch table `apply` uses, so a handler added later is honoured.
"""

from __future__ import annotations

import inspect

from eventsourcing.utils import resolve_topic


class ConsumedTopics:
    """`consumed(topic)`: would `projection.apply` do anything with an event of this topic?"""

    def __init__(self, projection):
        method = inspect.getattr_static(type(projection), "apply", None)
        self._projection = projection
        self._dispatcher = getattr(method, "dispatcher", None)  # None: not singledispatch, decode everything
        self._fallback = self._dispatcher.dispatch(object) if self._dispatcher else None
        self._known: dict[str, bool] = {}
        self._handlers: dict[type, object] = {}

    def __call__(self, topic: str) -> bool:
        known = self._known.get(topic)
        if known is None:
            known = self._known[topic] = self._consumed(topic)
        return known

    def handler(self, event_class: type):
        """`projection.apply` for events of `event_class`, already dispatched: a singledispatchmethod
        builds a bound wrapper (functools.update_wrapper) on every call, a tenth of a replay's time."""
        handler = self._handlers.get(event_class)
        if handler is None:
            if self._dispatcher is None:
                handler = self._projection.apply
            else:
                handler = self._dispatcher.dispatch(event_class).__get__(self._projection, type(self._projection))
            handler = self._handlers[event_class] = handler
        return handler

    def _consumed(self, topic: str) -> bool:
        if self._dispatcher is None:
            return True
        try:
            event_class = resolve_topic(topic)
        except Exception:  # noqa: BLE001 - let decoding fail (and be reported) as it always did
            return True
        return self._dispatcher.dispatch(event_class) is not self._fallback
