"""Prometheus metrics of one server (its own registry, so several apps can live in one process).

Series (prefix `salesai_`): requests_waiting / requests_running (gauges), requests_rejected_total
{reason: queue_full, queue_timeout, rate_limit, draining, not_ready, server_error, out_of_memory},
client_disconnects_total, prompt_tokens_total, generation_tokens_total, and histograms
time_to_first_token_seconds, inter_token_latency_seconds, e2e_request_latency_seconds,
queue_wait_seconds. Names follow vLLM's / TGI's where they have one.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The server's metric objects; the engine and the HTTP layer call the small methods."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.waiting = Gauge("salesai_requests_waiting", "Sequences queued, not yet in the batch", registry=r)
        self.running = Gauge("salesai_requests_running", "Sequences in the running batch", registry=r)
        self.rejections = Counter("salesai_requests_rejected", "Requests refused or failed, by reason",
                                  ["reason"], registry=r)
        self.disconnects = Counter("salesai_client_disconnects", "Requests whose client went away",
                                   registry=r)
        self.prompt = Counter("salesai_prompt_tokens", "Prompt tokens prefilled", registry=r)
        self.generation = Counter("salesai_generation_tokens", "Tokens generated", registry=r)
        self.ttft = Histogram("salesai_time_to_first_token_seconds", "Submission to first token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("salesai_inter_token_latency_seconds", "Gap between a sequence's tokens",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("salesai_e2e_request_latency_seconds", "Submission to last token",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.wait = Histogram("salesai_queue_wait_seconds", "Submission to scheduling",
                              buckets=LATENCY_BUCKETS, registry=r)

    def queue(self, waiting: int, running: int) -> None:
        self.waiting.set(waiting)
        self.running.set(running)

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason=reason).inc()

    def disconnected(self) -> None:
        self.disconnects.inc()

    def prompt_tokens(self, n: int) -> None:
        self.prompt.inc(n)

    def token(self, ttft: float | None, gap: float | None) -> None:
        self.generation.inc()
        if ttft is not None:
            self.ttft.observe(ttft)
        if gap is not None:
            self.itl.observe(gap)

    def finished(self, e2e: float) -> None:
        self.e2e.observe(e2e)

    def queue_wait(self, seconds: float) -> None:
        self.wait.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def value(self, name: str, **labels: Any) -> float:
        """A sample's current value (tests)."""
        got = self.registry.get_sample_value(name, labels or None)
        return 0.0 if got is None else float(got)


__all__ = ["Metrics"]
