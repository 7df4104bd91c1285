"""Every Prometheus instrument of notifier, on one registry made per process (never the
global default one, so tests and several apps in one process don't collide).

Label values are bounded: channels, statuses, providers and outcomes — never recipient,
address or district ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from notifier.domain.model import Channel, ContactStatus, DeliveryStatus, Reason

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.send_requests = Counter(
            "notifier_send_requests_total",
            "Send requests taken from Kafka, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        # Present at 0 from the start, so increase() sees the first dead letter.
        for outcome in ("processed", "duplicate", "dead_lettered"):
            self.send_requests.labels(outcome)
        self.deliveries = Counter(
            "notifier_deliveries_total",
            "Delivery state changes recorded, by channel and status.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "notifier_duplicate_deliveries_suppressed_total",
            "Deliveries not repeated because a redelivered or duplicated request had done them.",
            ["channel"],
            registry=self.registry,
        )
        self.provider_seconds = Histogram(
            "notifier_provider_request_seconds",
            "Time of one provider API call, by provider and outcome.",
            ["provider", "outcome"],
            buckets=PROVIDER_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "notifier_delivery_latency_seconds",
            "From the request's created_at to the provider accepting the message.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.directory_events = Counter(
            "notifier_directory_events_total",
            "Directory events applied, by kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )

        self.failovers = Counter(
            "notifier_failovers_total",
            "Messages sent again on the other channel, by channels and reason.",
            ["from_channel", "to_channel", "reason"],
            registry=self.registry,
        )
        self.bounces = Counter(
            "notifier_bounces_total",
            "Provider reports that an address failed or opted out, by channel and reason.",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.resets = Counter(
            "notifier_status_resets_total",
            "Contact points set back to active, by channel and who did it.",
            ["channel", "actor"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "notifier_webhook_reports_total",
            "Provider webhook reports, by provider and what became of them.",
            ["provider", "outcome"],
            registry=self.registry,
        )

        self.translations = Counter(
            "notifier_translations_total",
            "Message bodies machine-translated (once per message and language), by outcome.",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.sms_segments = Counter(
            "notifier_sms_segments_total",
            "SMS segments sent (what carriers bill), by encoding.",
            ["encoding"],
            registry=self.registry,
        )

        self.unknown_outcomes = Counter(
            "notifier_unknown_outcome_total",
            "Deliveries whose earlier attempt's outcome is unknown (the process died "
            "mid-send, or the provider did not answer): each a possible duplicate, unless the "
            "provider's records show it went out (notifier_unknown_outcome_lookups_total).",
            ["channel"],
            registry=self.registry,
        )
        self.unknown_outcome_lookups = Counter(
            "notifier_unknown_outcome_lookups_total",
            "Providers asked whether a delivery of unknown outcome already went out, by "
            "result: found (recorded, not sent again), not_found, failed or over_budget (sent "
            "again).",
            ["channel", "result"],
            registry=self.registry,
        )
        self.retries = Counter(
            "notifier_retries_total",
            "Provider calls retried after a transient failure.",
            ["provider"],
            registry=self.registry,
        )
        self.circuit_open = Gauge(
            "notifier_provider_circuit_open",
            "1 while the provider's circuit is open (calls stopped, messages failing over).",
            ["provider"],
            registry=self.registry,
        )

        self.lag = Gauge(
            "notifier_consumer_lag",
            "Records behind the end of the partition, as of the last batch read from it.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.contact_point_gauge = Gauge(
            "notifier_contact_points",
            "Addresses with a recorded status (something happened to them: a bounce, an "
            "opt-out, a reset), by status. Every replica reports the same totals: aggregate "
            "with max, not sum.",
            ["channel", "status"],
            registry=self.registry,
        )

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: ``labels`` takes a lock and checks its
        arguments on every call, a cost paid several times per delivery."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def request_processed(self, outcome: str) -> None:
        self._child(self.send_requests, outcome).inc()

    def delivery_recorded(self, channel: Channel, status: DeliveryStatus) -> None:
        self._child(self.deliveries, channel.value, status.value).inc()

    def provider_request(self, provider: str, outcome: str, seconds: float) -> None:
        self._child(self.provider_seconds, provider, outcome).observe(seconds)

    def delivery_latency(self, channel: Channel, seconds: float) -> None:
        self._child(self.latency, channel.value).observe(max(seconds, 0.0))

    def duplicate_suppressed(self, channel: Channel) -> None:
        self._child(self.duplicates, channel.value).inc()

    def directory_event(self, kind: str, outcome: str) -> None:
        self._child(self.directory_events, kind, outcome).inc()

    def failover(self, from_channel: Channel, to_channel: Channel, reason: Reason | None) -> None:
        self._child(self.failovers, from_channel.value, to_channel.value, _reason(reason)).inc()

    def bounce(self, channel: Channel, reason: Reason | None) -> None:
        self._child(self.bounces, channel.value, _reason(reason)).inc()

    def translation(self, provider: str, outcome: str) -> None:
        self._child(self.translations, provider, outcome).inc()

    def sms_sent(self, encoding: str, segments: int) -> None:
        self._child(self.sms_segments, encoding).inc(segments)

    def status_reset(self, channel: Channel, actor: str) -> None:
        self._child(self.resets, channel.value, actor).inc()

    def webhook_reports(self, provider: str, outcome: str, count: int) -> None:
        self._child(self.webhooks, provider, outcome).inc(count)

    def unknown_outcome(self, channel: Channel) -> None:
        self._child(self.unknown_outcomes, channel.value).inc()

    def unknown_outcome_lookup(self, channel: Channel, result: str) -> None:
        self._child(self.unknown_outcome_lookups, channel.value, result).inc()

    def retry(self, provider: str) -> None:
        self._child(self.retries, provider).inc()

    def circuit_changed(self, provider: str, *, is_open: bool) -> None:
        self._child(self.circuit_open, provider).set(1 if is_open else 0)

    def consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self._child(self.lag, topic, str(partition)).set(lag)

    def consumer_lag_gone(self, topic: str, partition: int) -> None:
        # Left in place, the last figure stayed on the dashboards of a process that no
        # longer read the partition, beside its new reader's.
        values = (topic, str(partition))
        if self._children.pop((id(self.lag), values), None) is not None:
            self.lag.remove(*values)

    def contact_points(self, counts: Mapping[tuple[Channel, ContactStatus], int]) -> None:
        for channel in (Channel.SMS, Channel.EMAIL):
            for status in ContactStatus:
                self._child(self.contact_point_gauge, channel.value, status.value).set(
                    counts.get((channel, status), 0)
                )


def _reason(reason: Reason | None) -> str:
    return reason.value if reason else "none"
