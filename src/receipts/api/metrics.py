"""Prometheus metrics (``GET /metrics``), one registry per app."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """The service's metrics: requests by route, appends by producer, group commit sizes
    (``group_sizes``, filled by the writer), the ledger's and its latest checkpoint's size."""

    def __init__(
        self,
        ledger_size: Callable[[], int],
        checkpoint_size: Callable[[], int],
        group_sizes: deque[int],
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "receipts_http_requests_total", "HTTP requests", ["method", "route", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "receipts_http_request_seconds", "HTTP request latency", ["route"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )  # fmt: skip
        self.appended = Counter(
            "receipts_appended_total", "Receipts durably appended", ["producer"], registry=r
        )
        self.group = Histogram(
            "receipts_commit_group_receipts", "Receipts per group commit", registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )  # fmt: skip
        size = Gauge("receipts_ledger_size", "Receipts in the journal", registry=r)
        size.set_function(ledger_size)
        checkpoint = Gauge("receipts_checkpoint_size", "Size of the latest checkpoint", registry=r)
        checkpoint.set_function(checkpoint_size)
        self.group_sizes = group_sizes
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, start: float) -> None:
        """Count a request by its route template and time it from ``start`` (perf_counter)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() hashes and locks on every call: look them up once
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
        children[0].inc()
        children[1].observe(time.perf_counter() - start)

    def render(self) -> bytes:
        sizes = self.group_sizes
        while sizes:
            self.group.observe(sizes.popleft())
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every request by its route template (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", None)
            if name is None:  # a plain Starlette route (no path parameters) sets no "route"
                name = scope["path"] if "endpoint" in scope else "unmatched"
            self.metrics.observe(scope["method"], name, status[0], start)
