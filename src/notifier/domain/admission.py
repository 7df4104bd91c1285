"""Whether a send request may be processed at all, before anyone is resolved."""

from __future__ import annotations

from notifier.domain.errors import RejectionCode, RequestRejected
from notifier.domain.model import District, SendRequest


def admit(request: SendRequest, district: District | None) -> District:
    """The request's district, or ``RequestRejected`` with the dead-letter code."""
    if district is None:
        raise RequestRejected(
            RejectionCode.UNKNOWN_DISTRICT,
            f"District {request.district_id!r} is not in the directory.",
        )
    if len(request.recipient_ids) > district.max_recipients:
        raise RequestRejected(
            RejectionCode.TOO_MANY_RECIPIENTS,
            f"{len(request.recipient_ids)} recipients exceed the district's limit of "
            f"{district.max_recipients}.",
        )
    return district
