"""The composition root: settings in, a wired container of live resources out.

The only module that knows which adapter stands behind which port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import httpx
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from notifier.adapters.api_tokens import StaticTokens
from notifier.adapters.catalogs import GettextCatalogs
from notifier.adapters.clock import SystemClock
from notifier.adapters.kafka_events import (
    KafkaEventPublisher,
    KafkaReplyPublisher,
    RememberingPartitioner,
)
from notifier.adapters.kafka_topics import COMPACTED, TopicSpec, ensure_topics
from notifier.adapters.lingua_languages import LinguaDetector
from notifier.adapters.mail_replies import MailReplyParser
from notifier.adapters.migrations import migrate
from notifier.adapters.oidc import OidcVerifier
from notifier.adapters.pacing import KeyedPacer, by_sender, one_account
from notifier.adapters.provider_http import ProviderHttp, create_session
from notifier.adapters.sandbox import SandboxSender
from notifier.adapters.sendgrid import PROVIDER as SENDGRID
from notifier.adapters.sendgrid import (
    SendGridBounceList,
    SendGridEmail,
    SendGridEventVerifier,
    SendGridInboundParse,
    SendGridWebhook,
)
from notifier.adapters.sql.database import create_engine
from notifier.adapters.store import Storage
from notifier.adapters.twilio import PROVIDER as TWILIO
from notifier.adapters.twilio import TwilioSignatureVerifier, TwilioSms, TwilioWebhooks
from notifier.config import Settings
from notifier.domain.circuit import CircuitBreaker
from notifier.domain.model import Channel
from notifier.handlers.contact_points import ContactPointDependencies
from notifier.handlers.delivery import (
    DeliveryDependencies,
    ResumeLinks,
    UnknownOutcomeLookups,
)
from notifier.handlers.follow_up import FollowUpDependencies, FollowUpPolicy
from notifier.handlers.replies import ReplyDependencies, ReplyPolicy
from notifier.handlers.sending import RetryPolicy
from notifier.handlers.support import SupportReads
from notifier.handlers.tokens import issue_token
from notifier.metrics import PrometheusMetrics
from notifier.ports import (
    BearerVerifier,
    ChannelSender,
    EmailEventsWebhook,
    EmailInbound,
    SendPacer,
    SentMessageLookup,
    SmsWebhooks,
    Suppressions,
    Translator,
)
from notifier.rate_limit import RateLimiter

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    broker: KafkaBroker
    event_producer: AIOKafkaProducer
    """Delivery events' own producer (see KafkaEventPublisher)."""
    store: Storage
    """Every store port's SQL adapter, on one database."""
    support: SupportReads
    http_client: httpx.AsyncClient
    provider_session: aiohttp.ClientSession
    metrics: PrometheusMetrics
    deliveries: DeliveryDependencies
    follow_up: FollowUpDependencies
    email_events: EmailEventsWebhook | None
    """None when no verification key is configured: the webhook then refuses everything."""
    sms_webhooks: SmsWebhooks | None
    email_inbound: EmailInbound | None
    """None when no Inbound Parse secret is configured: email replies are then refused."""
    tokens: StaticTokens
    bearer_verifiers: list[BearerVerifier]
    rate_limiter: RateLimiter
    translator: Translator | None
    replies: ReplyDependencies
    before_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run first on close, while everything still works: the consumer's open batches
    finish and commit."""
    _producing: bool = field(default=False, init=False)

    async def start(self) -> None:
        """Create missing topics, then connect the broker (and start its subscribers)."""
        if self.settings.kafka.create_topics:
            await create_topics(self.settings)
        await self.event_producer.start()
        self._producing = True
        await self.broker.start()

    async def close(self) -> None:
        for hook in self.before_stop:
            await hook()
        # Then the broker (stopping it waits, up to graceful_timeout, for a handler still
        # running), before the store, the HTTP client and the event producer it needs.
        await self.broker.stop()
        if self._producing:
            await self.event_producer.stop()  # sends what it still holds
        if self.translator is not None:
            self.translator.close()
        await self.http_client.aclose()
        await self.provider_session.close()
        await self.store.engine.dispose()


def topic_specs(settings: Settings) -> list[TopicSpec]:
    kafka = settings.kafka
    return [
        TopicSpec(kafka.send_requests_topic, kafka.partitions),
        TopicSpec(kafka.recipients_topic, kafka.partitions, COMPACTED),
        TopicSpec(kafka.districts_topic, 1, COMPACTED),
        TopicSpec(kafka.conversation_state_topic, kafka.partitions, COMPACTED),
        TopicSpec(kafka.delivery_events_topic, kafka.partitions),
        TopicSpec(kafka.replies_topic, kafka.partitions),
        TopicSpec(kafka.dead_letter_topic, 1),
    ]


EVENT_BATCH_BYTES = 256 * 1024
"""The most a partition's batch of delivery events holds. aiokafka's 16 KiB default is
some 40 events: a Kafka batch of requests makes hundreds at once, and each further record
then waited for a full batch to go. 18 µs of CPU an event against 10 (650 events at a
time, this machine's broker); well under the broker's 1 MiB message limit."""


def create_event_producer(settings: Settings) -> AIOKafkaProducer:
    """Configured as the broker's producer: every delivery event is acknowledged by all
    in-sync replicas and written once however often the producer retries."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        client_id="notifier-events",
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=EVENT_BATCH_BYTES,
        partitioner=RememberingPartitioner(),
    )


def create_broker(settings: Settings, metrics: PrometheusMetrics | None = None) -> KafkaBroker:
    """``metrics``: where FastStream's own Kafka metrics go (messages received, processed,
    published, their sizes and durations, by topic), beside notifier's."""
    return KafkaBroker(
        settings.kafka.bootstrap_servers,
        client_id="notifier",
        # Topics are created by ensure_topics with their partitions and compaction;
        # FastStream's own creation would make them first, with broker defaults.
        allow_auto_create_topics=False,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        graceful_timeout=settings.kafka.graceful_timeout_seconds,
        logger=logging.getLogger("notifier.kafka"),
        # FastStream logs every message at this level; at INFO that is one line per message
        # on the hot path. Our handlers log what matters.
        log_level=logging.DEBUG,
        middlewares=(
            [KafkaPrometheusMiddleware(registry=metrics.registry, app_name="notifier")]
            if metrics is not None
            else []
        ),
    )


async def open_container(settings: Settings) -> Container:
    clock = SystemClock()
    engine = create_engine(settings.database.url, pool_size=settings.database.pool_size)
    if settings.database.migrate_on_start:
        await migrate(engine)
    store = Storage.on(engine, clock)
    # One pooled keep-alive session for every provider call (timeouts are per provider),
    # and an httpx client for the rest (identity providers' keys).
    provider_session = create_session(settings.delivery.max_in_flight)
    http_client = httpx.AsyncClient()
    metrics = PrometheusMetrics()
    broker = create_broker(settings, metrics)
    event_producer = create_event_producer(settings)
    providers = _providers(settings, store, provider_session)
    # The Google client looks up default credentials on creation, which blocks.
    translator = await asyncio.to_thread(_translator, settings)
    delivery = settings.delivery
    catalogs = GettextCatalogs()
    # Replies are read (and their language told) among the languages we write in.
    reply_languages = (catalogs.source_language, *catalogs.languages)
    reply_address_secret = (
        delivery.reply_address_secret.get_secret_value().encode()
        if delivery.reply_address_secret
        else None
    )
    deliveries = DeliveryDependencies(
        directory=store.directory,
        ledger=store.ledger,
        requests=store.requests,
        contact_points=store.contact_points,
        inbox=store.inbox,
        translations=store.translations,
        senders=providers.senders,
        events=KafkaEventPublisher(event_producer, settings.kafka.delivery_events_topic),
        catalogs=catalogs,
        clock=clock,
        metrics=metrics,
        retry=RetryPolicy(attempts=delivery.retry_attempts, max_seconds=delivery.retry_max_seconds),
        in_flight=asyncio.Semaphore(delivery.max_in_flight),
        resume_links=_resume_links(settings),
        message_link_template=delivery.message_link_template,
        translator=translator,
        reply_address_secret=reply_address_secret,
        circuits=_circuits(settings),
        pacers=_pacers(settings),
        lookups=UnknownOutcomeLookups(
            providers=providers.lookups, remaining=settings.twilio.unknown_outcome_lookups
        ),
    )
    contact_points = ContactPointDependencies(
        store.contact_points, store.audit, store.directory, providers.suppressions, clock
    )
    tokens = StaticTokens(settings.api.tokens, store.tokens)
    follow_up = FollowUpDependencies(
        delivery=deliveries,
        contact_points=contact_points,
        history=store.ledger,
        provider_events=store.provider_events,
        policy=FollowUpPolicy(
            strikes_to_fail=delivery.strikes_to_fail,
            overdue_after=timedelta(seconds=delivery.overdue_seconds),
            sms_final_status_expected=settings.twilio.status_callback_url is not None,
        ),
    )
    return Container(
        settings=settings,
        broker=broker,
        event_producer=event_producer,
        store=store,
        support=SupportReads(store.directory, store.contact_points, store.ledger, store.ledger),
        http_client=http_client,
        provider_session=provider_session,
        metrics=metrics,
        deliveries=deliveries,
        follow_up=follow_up,
        email_events=providers.email_events,
        sms_webhooks=providers.sms_webhooks,
        email_inbound=(
            SendGridInboundParse(settings.sendgrid.inbound_secret.get_secret_value())
            if settings.sendgrid.inbound_secret
            else None
        ),
        tokens=tokens,
        bearer_verifiers=_bearer_verifiers(settings, tokens, http_client, clock),
        translator=translator,
        replies=ReplyDependencies(
            directory=store.directory,
            ledger=store.ledger,
            history=store.ledger,
            provider_events=store.provider_events,
            translations=store.translations,
            replies=KafkaReplyPublisher(broker, settings.kafka.replies_topic),
            policy=ReplyPolicy(
                window=timedelta(days=delivery.reply_window_days),
                email_window=timedelta(days=delivery.reply_email_window_days),
                max_chars=delivery.reply_max_chars,
            ),
            catalogs=catalogs,
            metrics=metrics,
            senders_limit=RateLimiter(per_minute=delivery.replies_per_minute, burst=5),
            reply_address_secret=reply_address_secret,
            # Behind the same circuit, pacing, slots and retries as every delivery.
            email_sender=deliveries.guarded(Channel.EMAIL),
            text_reader=MailReplyParser(reply_languages),
            detector=LinguaDetector(reply_languages),
            translator=translator,
        ),
        rate_limiter=RateLimiter(
            per_minute=settings.api.rate_limit_per_minute, burst=settings.api.rate_limit_burst
        ),
    )


@dataclass(frozen=True)
class _Providers:
    senders: dict[Channel, ChannelSender]
    lookups: dict[Channel, SentMessageLookup]
    suppressions: dict[Channel, Suppressions]
    email_events: EmailEventsWebhook | None
    sms_webhooks: SmsWebhooks | None


def _providers(settings: Settings, store: Storage, session: aiohttp.ClientSession) -> _Providers:
    twilio, sendgrid = settings.twilio, settings.sendgrid
    sms: ChannelSender
    email: ChannelSender
    suppressions: dict[Channel, Suppressions] = {}
    # SendGrid has no cheap way to ask whether it took a given mail: email is sent again.
    lookups: dict[Channel, SentMessageLookup] = {}
    sms_webhooks: SmsWebhooks | None = None
    email_events: EmailEventsWebhook | None = None
    if twilio.configured:
        assert twilio.account_sid is not None
        assert twilio.auth_token is not None
        twilio_sms = TwilioSms(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token.get_secret_value(),
            api_base_url=twilio.api_base_url,
            http=ProviderHttp(session, "twilio", twilio.timeout_seconds),
            status_callback_url=twilio.status_callback_url,
        )
        sms = twilio_sms
        lookups[Channel.SMS] = twilio_sms
        sms_webhooks = TwilioWebhooks(TwilioSignatureVerifier(twilio.auth_token.get_secret_value()))
    else:
        log.warning("Twilio has no credentials: SMS go to the sandbox outbox, not to phones")
        sms = SandboxSender(Channel.SMS, store.sandbox)
    if sendgrid.configured:
        assert sendgrid.api_key is not None
        sendgrid_email = SendGridEmail(
            api_key=sendgrid.api_key.get_secret_value(),
            api_base_url=sendgrid.api_base_url,
            http=ProviderHttp(session, "sendgrid", sendgrid.timeout_seconds),
        )
        email = sendgrid_email
        suppressions[Channel.EMAIL] = SendGridBounceList(sendgrid_email)
    else:
        log.warning("SendGrid has no API key: email goes to the sandbox outbox, not to inboxes")
        email = SandboxSender(Channel.EMAIL, store.sandbox)
    if sendgrid.webhook_public_key:
        email_events = SendGridWebhook(
            SendGridEventVerifier(
                sendgrid.webhook_public_key, max_age_seconds=sendgrid.webhook_max_age_seconds
            )
        )
    return _Providers(
        senders={Channel.SMS: sms, Channel.EMAIL: email},
        lookups=lookups,
        suppressions=suppressions,
        email_events=email_events,
        sms_webhooks=sms_webhooks,
    )


def _bearer_verifiers(
    settings: Settings, tokens: StaticTokens, http_client: httpx.AsyncClient, clock: SystemClock
) -> list[BearerVerifier]:
    """Tried in order: our own tokens (no dots, answered without a network call), then
    OIDC-issued JWTs when an identity provider is configured."""
    verifiers: list[BearerVerifier] = [tokens]
    oidc = settings.oidc
    if oidc.configured:
        assert oidc.issuer is not None
        assert oidc.audience is not None
        assert oidc.jwks_url is not None
        verifiers.append(
            OidcVerifier(
                issuer=oidc.issuer,
                audience=oidc.audience,
                jwks_url=oidc.jwks_url,
                http_client=http_client,
                clock=clock,
                scope_claim=oidc.scope_claim,
                recipient_claim=oidc.recipient_claim,
                leeway_seconds=oidc.leeway_seconds,
                jwks_cache_seconds=oidc.jwks_cache_seconds,
            )
        )
    return verifiers


def _translator(settings: Settings) -> Translator | None:
    translation = settings.translation
    if translation.provider == "deepl":
        from notifier.adapters.deepl import DeepLTranslator

        assert settings.deepl.auth_key is not None
        return DeepLTranslator(
            auth_key=settings.deepl.auth_key.get_secret_value(),
            server_url=settings.deepl.server_url,
            timeout_seconds=translation.timeout_seconds,
        )
    if translation.provider == "google":
        # Imported here: the Google client pulls in gRPC (~0.4 s), which no other setup needs.
        from notifier.adapters.google_translate import GoogleTranslator

        api_key = settings.google.api_key
        return GoogleTranslator(
            api_key=api_key.get_secret_value() if api_key else None,
            api_endpoint=settings.google.api_endpoint,
            timeout_seconds=translation.timeout_seconds,
        )
    log.info("no translator: bodies without a translation go out in the original, with a note")
    return None


def _circuits(settings: Settings) -> dict[str, CircuitBreaker]:
    delivery = settings.delivery
    return {
        provider: CircuitBreaker(
            failure_threshold=delivery.circuit_failures,
            cool_down=timedelta(seconds=delivery.circuit_cool_down_seconds),
            window=timedelta(seconds=delivery.circuit_window_seconds),
        )
        for provider in (TWILIO, SENDGRID)
    }


def _pacers(settings: Settings) -> dict[Channel, SendPacer]:
    pacers: dict[Channel, SendPacer] = {}
    if settings.twilio.messages_per_second:
        pacers[Channel.SMS] = KeyedPacer(settings.twilio.messages_per_second, by_sender)
    if settings.sendgrid.requests_per_second:
        pacers[Channel.EMAIL] = KeyedPacer(settings.sendgrid.requests_per_second, one_account)
    return pacers


def _resume_links(settings: Settings) -> ResumeLinks | None:
    secret = settings.delivery.resume_link_secret
    if settings.http.public_base_url is None or secret is None:
        return None
    return ResumeLinks(
        base_url=settings.http.public_base_url,
        secret=secret.get_secret_value().encode(),
        valid_for=timedelta(hours=settings.delivery.resume_link_valid_hours),
    )


async def migrate_database(settings: Settings) -> None:
    engine = create_engine(settings.database.url, pool_size=1)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


async def create_topics(settings: Settings) -> list[str]:
    return await ensure_topics(
        settings.kafka.bootstrap_servers,
        topic_specs(settings),
        replication_factor=settings.kafka.replication_factor,
    )


async def create_api_token(
    settings: Settings, name: str, scope: str, recipient_id: str | None, *, actor: str
) -> str:
    clock = SystemClock()
    engine = create_engine(settings.database.url, pool_size=1)
    try:
        if settings.database.migrate_on_start:
            await migrate(engine)
        store = Storage.on(engine, clock)
        return await issue_token(
            name,
            scope,
            recipient_id,
            actor,
            issuer=StaticTokens(settings.api.tokens, store.tokens),
            audit=store.audit,
            clock=clock,
        )
    finally:
        await engine.dispose()
