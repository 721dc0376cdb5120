"""Prometheus metrics measured outside the HTTP layer: event-store write latency (every process
that writes), and, computed only when scraped, projection lag, calls by state and broker links.

Scrape-time collectors cost nothing per event or per call; the one hot-path measurement is the
event-store write, one histogram observation per commit (a group commit carries many calls).
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from queries.read_models import HISTORY, ReadModelCatalogue

STORE_WRITES = Histogram("iotcloud_event_store_write_seconds", "Time to commit one batch of events",
                         ("application",),
                         buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


def instrument_event_store(app, name: str):
    """Times every commit of `app`'s recorder (wraps its `insert_events`; nothing else changes)."""
    recorder = app.recorder
    insert = recorder.insert_events
    observe = STORE_WRITES.labels(name).observe

    def timed_insert(*args, **kwargs):
        started = time.perf_counter()
        try:
            return insert(*args, **kwargs)
        finally:
            observe(time.perf_counter() - started)

    recorder.insert_events = timed_insert
    return app


class ProjectionCollector(Collector):
    """Lag (events in the store not yet in the read model) per projection and source, and device calls
    by state in the commands read model, read from the stores when Prometheus scrapes."""

    def __init__(self, projectors, db):
        self._projectors, self._db = projectors, db

    def collect(self):
        catalogue = ReadModelCatalogue(self._db)
        lag = GaugeMetricFamily("iotcloud_projection_lag_events", "Events not yet applied to a read model",
                                labels=("projection", "source"))
        for projector in self._projectors:
            name = projector.projection.name
            generation = catalogue.active_generation(name)
            for source in projector.projection.sources:
                lag.add_metric((name, source), projector.source_head(source)
                               - catalogue.position(name, generation, source))
        yield lag
        calls = GaugeMetricFamily("iotcloud_device_calls", "Device calls in the history read model by state",
                                  labels=("state",))
        for row in catalogue.collection(HISTORY).aggregate([{"$match": {"event": "command"}},
                                                            {"$group": {"_id": "$state", "n": {"$sum": 1}}}]):
            calls.add_metric((str(row["_id"]),), row["n"])
        yield calls


class GatewayCollector(Collector):
    def __init__(self, gateway):
        self._gateway = gateway

    def collect(self):
        link = GaugeMetricFamily("iotcloud_broker_link_up", "1 while the gateway is connected to the broker")
        link.add_metric((), 1 if self._gateway.connected else 0)
        yield link
        online = GaugeMetricFamily("iotcloud_broker_connections",
                                   "Live broker connections the gateway hears of (devices and platform services)")
        online.add_metric((), self._gateway.dispatcher.online_devices())
        yield online


def register(collector: Collector) -> Collector:
    REGISTRY.register(collector)
    return collector
