"""Issuing API tokens: shown once, kept as a hash, audited."""

from __future__ import annotations

from notifier.domain.model import Scope
from notifier.domain.records import AuditEntry
from notifier.ports import AuditLog, Clock, TokenIssuer


class TokenRequestInvalid(ValueError):
    pass


async def issue_token(
    name: str,
    scope: str,
    recipient_id: str | None,
    actor: str,
    *,
    issuer: TokenIssuer,
    audit: AuditLog,
    clock: Clock,
) -> str:
    if scope not in set(Scope):
        raise TokenRequestInvalid(f"scope must be one of {', '.join(Scope)}")
    if (scope == Scope.SELF_SERVICE) != (recipient_id is not None):
        raise TokenRequestInvalid(
            "a self-service token needs --recipient, and only it may have one"
        )
    if not name.strip():
        raise TokenRequestInvalid("a token needs a name: the audit log records it")
    now = clock.now()
    token, stored = await issuer.create(name.strip(), scope, recipient_id, now)
    await audit.append_audit(
        AuditEntry(
            occurred_at=now,
            actor=actor,
            scope=Scope.ADMIN,
            action="create_token",
            channel=None,
            address=None,
            note=f"token {stored.name!r} with scope {scope}"
            + (f" for recipient {recipient_id}" if recipient_id else ""),
            request_id=None,
            outcome=f"sha256 {stored.sha256[:12]}…",
        )
    )
    return token
