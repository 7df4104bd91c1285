"""Use cases: one async function per command. They take their collaborators as arguments
(ports, never adapters or settings) and leave transport concerns to the entrypoints."""

from notifier.handlers.delivery import (
    DeliveryDependencies,
    RequestReport,
    RetryPolicy,
    deliver_request,
)
from notifier.handlers.directory import (
    apply_district,
    apply_recipient,
    remove_district,
    remove_recipient,
)

__all__ = [
    "DeliveryDependencies",
    "RequestReport",
    "RetryPolicy",
    "apply_district",
    "apply_recipient",
    "deliver_request",
    "remove_district",
    "remove_recipient",
]
