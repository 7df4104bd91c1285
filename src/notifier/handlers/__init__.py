"""Use cases: one async function per command. They take their collaborators as arguments
(ports, never adapters or settings) and leave transport concerns to the entrypoints."""

from notifier.handlers.delivery import (
    DeliveryDependencies,
    RequestReport,
    deliver_request,
)
from notifier.handlers.directory import (
    apply_district,
    apply_recipient,
    remove_district,
    remove_recipient,
)
from notifier.handlers.sending import RetryPolicy

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
