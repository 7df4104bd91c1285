"""Settings: environment variables (``NOTIFIER_<SECTION>_<NAME>``) over config/notifier.yaml.

Secrets (provider keys) come only from the environment or from files mounted in the secrets
directory (one file per variable, named like it, e.g. ``NOTIFIER_TWILIO_AUTH_TOKEN``); a
secret found in the YAML file is an error, so it can't end up in a repository or a ConfigMap.
Settings are built once by the entrypoint and passed down; nothing reads them globally.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from notifier.domain.model import Scope

CONFIG_FILE_VARIABLE = "NOTIFIER_CONFIG_FILE"
SECRETS_DIR_VARIABLE = "NOTIFIER_SECRETS_DIR"
DEFAULT_CONFIG_FILE = Path("config/notifier.yaml")
DEFAULT_SECRETS_DIR = Path("/run/secrets/notifier")


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers, comma-separated host:port."
    )
    group_id: str = Field("notifier", description="Consumer group of every subscriber.")
    send_requests_topic: str = Field(
        "conversation.send-requests", description="Send requests from the conversation core."
    )
    recipients_topic: str = Field(
        "directory.recipients", description="Directory profiles (compacted)."
    )
    districts_topic: str = Field(
        "directory.districts", description="District notification settings (compacted)."
    )
    conversation_state_topic: str = Field(
        "conversation.state", description="Open/stopped and who muted it (compacted)."
    )
    replies_topic: str = Field(
        "conversation.replies", description="Replies that came back by text or email."
    )
    delivery_events_topic: str = Field(
        "notifier.delivery-events", description="Delivery state changes published by notifier."
    )
    dead_letter_topic: str = Field(
        "notifier.dead-letter", description="Input that could not be processed, with reasons."
    )
    create_topics: bool = Field(
        True, description="Create missing topics at start (partitions, compaction)."
    )
    partitions: int = Field(
        6, ge=1, description="Partitions of created topics; caps consumer parallelism."
    )
    replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    batch_max_records: int = Field(
        100, ge=1, description="Most send requests taken and committed as one batch."
    )
    batch_timeout_ms: int = Field(
        10,
        ge=1,
        description="How long a fetch waits when no record has arrived; FastStream then "
        "pauses as long again before the next, so a request reaching a caught-up consumer "
        "can wait up to twice this. Records already there are taken at once.",
    )
    max_open_batches: int = Field(
        4,
        ge=1,
        description="Batches in progress at once: the next is read while the last one's "
        "slowest deliveries are still out. Offsets are committed in order as each finishes.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts reading."
    )
    graceful_timeout_seconds: float = Field(
        20.0, gt=0, description="On shutdown, how long in-flight batches may take to finish."
    )


class DatabaseSettings(BaseModel):
    url: str = Field(
        "sqlite+aiosqlite:///.local/notifier.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///… (embedded) or "
        "postgresql+asyncpg://… (production).",
    )
    migrate_on_start: bool = Field(
        True, description="Apply Alembic migrations at start (off when a job migrates)."
    )
    pool_size: int = Field(10, ge=1, description="Connections per process (PostgreSQL).")


class TwilioSettings(BaseModel):
    account_sid: str | None = Field(
        None, description="Twilio Account SID; without it (and a token) SMS go to the sandbox."
    )
    auth_token: SecretStr | None = Field(None, description="Twilio auth token (secret).")
    api_base_url: str = Field("https://api.twilio.com", description="Twilio REST API base URL.")
    status_callback_url: str | None = Field(
        None, description="Public URL of POST /webhooks/twilio/status, sent with each SMS."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one Twilio API call.")
    messages_per_second: float | None = Field(
        None,
        gt=0,
        description="Texts per second per sending number or Messaging Service (what the "
        "sender is provisioned for, e.g. 1 for a long code); unset, texts are not paced.",
    )
    inbound_url: str | None = Field(
        None,
        description="Public URL of POST /webhooks/twilio/inbound as Twilio calls it (signatures "
        "are over the URL Twilio used, which differs from ours behind a proxy).",
    )
    unknown_outcome_lookups: int = Field(
        2000,
        ge=0,
        description="Texts of unknown outcome (claimed by a process that died mid-send) this "
        "process may look up in Twilio's Messages list before sending again: one to two list "
        "requests each, which Twilio rate-limits. Every text of the batches a crash left "
        "uncommitted is of unknown outcome, so the default covers a full batch (100 requests "
        "of up to 15 recipients). 0: always send again.",
    )

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token)


class SendGridSettings(BaseModel):
    api_key: SecretStr | None = Field(
        None, description="SendGrid API key (secret); without it email goes to the sandbox."
    )
    api_base_url: str = Field("https://api.sendgrid.com", description="SendGrid v3 API base URL.")
    timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one SendGrid API call.")
    requests_per_second: float | None = Field(
        None,
        gt=0,
        description="Mail Send requests per second for the account; unset, not paced.",
    )
    webhook_public_key: str | None = Field(
        None,
        description="Event Webhook verification key (base64, from SendGrid's Mail Settings); "
        "without it POST /webhooks/sendgrid/events refuses every request.",
    )
    webhook_max_age_seconds: float = Field(
        600.0, gt=0, description="Oldest signed Event Webhook timestamp accepted (replays)."
    )
    inbound_secret: SecretStr | None = Field(
        None,
        description="Secret of the Inbound Parse URL set at SendGrid (secret): as its last "
        "path segment (.../webhooks/sendgrid/inbound/<secret>) or as the basic-auth password "
        "(https://sendgrid:<secret>@host/webhooks/sendgrid/inbound); unset, every inbound "
        "email is refused.",
    )

    @property
    def configured(self) -> bool:
        return self.api_key is not None


class TranslationSettings(BaseModel):
    provider: Literal["none", "deepl", "google"] = Field(
        "none",
        description="Translator of message bodies the request has no translation for; none "
        "sends the original with a note in the recipient's language.",
    )
    timeout_seconds: float = Field(
        5.0, gt=0, description="Longest wait for one translation before sending the original."
    )


class DeepLSettings(BaseModel):
    auth_key: SecretStr | None = Field(None, description="DeepL API key (secret).")
    server_url: str | None = Field(
        None, description="DeepL API base URL; unset, the SDK chooses by key (Free or Pro)."
    )


class GoogleSettings(BaseModel):
    api_key: SecretStr | None = Field(
        None,
        description="Cloud Translation API key (secret); unset, Application Default "
        "Credentials are used.",
    )
    api_endpoint: str = Field(
        "https://translation.googleapis.com", description="Cloud Translation base URL."
    )


class HttpSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Interface of the HTTP server (0.0.0.0 in pods).")
    port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP server.")
    public_base_url: str | None = Field(
        None,
        description="Base URL people reach the service at, for the resume-email link in "
        "fallback texts; without it (or a link secret) texts carry no link.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted (webhooks, API); 413."
    )
    max_inbound_email_bytes: int = Field(
        31_457_280,
        ge=1024,
        description="Largest Inbound Parse post (an email with its attachments; SendGrid's own "
        "limit is 30 MB).",
    )


class DeliverySettings(BaseModel):
    max_in_flight: int = Field(
        256,
        ge=1,
        description="Deliveries (provider calls) in progress at once, per process: enough "
        "to keep about 1,500 calls a second going at a provider round trip of 150 ms.",
    )
    retry_attempts: int = Field(
        4, ge=1, description="Attempts of a transient provider failure before giving up."
    )
    retry_max_seconds: float = Field(
        30.0, gt=0, description="Longest total time spent retrying one delivery."
    )
    overdue_seconds: float = Field(
        1800.0,
        gt=0,
        description="Seconds an email may stay deferred (or a text without a final status) "
        "before failing over; a district's deferred_failover_minutes overrides it.",
    )
    overdue_check_seconds: float = Field(
        60.0, gt=0, description="How often the consumer looks for overdue deliveries."
    )
    reply_window_days: float = Field(
        7.0,
        gt=0,
        description="A text is taken as a reply to the last notification its phone got "
        "within this many days; older or none, the sender is told how to answer in the app.",
    )
    replies_per_minute: float = Field(
        6.0, gt=0, description="Replies accepted per minute from one phone (bursts of 5)."
    )
    reply_email_window_days: float = Field(
        60.0,
        gt=0,
        description="An email reply names the notification it answers; it is taken for this "
        "many days after that notification.",
    )
    reply_address_secret: SecretStr | None = Field(
        None,
        description="Key signing the per-delivery Reply-To addresses of emails (secret); "
        "without it (or a district reply_domain) emails carry no Reply-To.",
    )
    reply_max_chars: int = Field(
        1600, ge=1, description="Longest reply kept; longer ones are cut (abuse limit)."
    )
    circuit_failures: int = Field(
        5,
        ge=1,
        description="Failures of one provider (5xx, timeouts, refused key) within the circuit "
        "window, and at least half its calls there, that open its circuit: it is not called, "
        "and messages fail over at once.",
    )
    circuit_window_seconds: float = Field(
        10.0, gt=0, description="The recent calls a provider's circuit judges it by."
    )
    circuit_cool_down_seconds: float = Field(
        30.0, gt=0, description="How long an open circuit waits before one probe call."
    )
    strikes_to_fail: int = Field(
        3, ge=1, description="Repeated failures of one address that mark it failing."
    )
    message_link_template: str | None = Field(
        None,
        description="Link to a message in the app, for the 'Read more' of shortened texts, "
        "e.g. https://connect.example/c/{conversation_id}?m={message_id}.",
    )
    resume_link_secret: SecretStr | None = Field(
        None, description="Key signing the resume-email links (secret)."
    )
    resume_link_valid_hours: int = Field(
        72, ge=1, description="How long a resume-email link works."
    )


class ApiToken(BaseModel):
    name: str = Field(description="Who holds it; recorded in the audit log.")
    scope: Scope
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, hex (never the token)."
    )
    recipient_id: str | None = Field(
        None, description="For self-service tokens: the one recipient they act for."
    )


class ApiSettings(BaseModel):
    tokens: list[ApiToken] = Field(
        default_factory=list,
        description="Bearer tokens of /api/, as a JSON list of {name, scope, sha256, "
        "recipient_id}; only hashes are configured (see also `notifier tokens create`).",
    )
    rate_limit_per_minute: float = Field(
        120.0, gt=0, description="API requests per minute allowed per token."
    )
    rate_limit_burst: int = Field(30, ge=1, description="Requests a token may make at once.")


class OidcSettings(BaseModel):
    issuer: str | None = Field(
        None,
        description="Issuer (iss) of accepted JWTs; without issuer, audience and jwks_url "
        "only static tokens are accepted.",
    )
    audience: str | None = Field(None, description="Audience (aud) a token must name.")
    jwks_url: str | None = Field(
        None, description="The identity provider's signing keys (its jwks_uri)."
    )
    scope_claim: str = Field(
        "scope", description="Claim with the token's scopes ('scp' is read when it is absent)."
    )
    recipient_claim: str = Field(
        "notifier_recipient_id",
        description="Claim naming the one recipient a self-service token acts for.",
    )
    leeway_seconds: float = Field(30.0, ge=0, le=300, description="Clock skew allowed.")
    jwks_cache_seconds: float = Field(
        300.0, gt=0, description="How long fetched signing keys are used before refetching."
    )

    @model_validator(mode="after")
    def _all_or_nothing(self) -> OidcSettings:
        given = (self.issuer, self.audience, self.jwks_url)
        if any(given) and not all(given):
            raise ValueError("oidc needs issuer, audience and jwks_url together")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.issuer and self.audience and self.jwks_url)


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["json", "text"] = Field(
        "json",
        description="json: one JSON object a line (timestamp, level, event, request, message, "
        "conversation and delivery ids), for log pipelines; text: for people at a terminal.",
    )


SECRET_FIELDS = frozenset(
    {
        ("twilio", "auth_token"),
        ("sendgrid", "api_key"),
        ("delivery", "resume_link_secret"),
        ("delivery", "reply_address_secret"),
        ("sendgrid", "inbound_secret"),
        ("deepl", "auth_key"),
        ("google", "api_key"),
    }
)


class _YamlWithoutSecrets(YamlConfigSettingsSource):
    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for section, name in SECRET_FIELDS:
            if isinstance(values.get(section), dict) and name in values[section]:
                variable = f"NOTIFIER_{section}_{name}".upper()
                raise ValueError(
                    f"{section}.{name} is a secret: set {variable} in the environment or the "
                    "secrets directory, not in the YAML file"
                )
        return values


class Settings(BaseSettings):
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    twilio: TwilioSettings = TwilioSettings()
    sendgrid: SendGridSettings = SendGridSettings()
    http: HttpSettings = HttpSettings()
    delivery: DeliverySettings = DeliverySettings()
    api: ApiSettings = ApiSettings()
    oidc: OidcSettings = OidcSettings()
    translation: TranslationSettings = TranslationSettings()
    deepl: DeepLSettings = DeepLSettings()
    google: GoogleSettings = GoogleSettings()
    log: LogSettings = LogSettings()

    model_config = SettingsConfigDict(
        env_prefix="NOTIFIER_",
        # One underscore between section and name, as in NOTIFIER_KAFKA_BOOTSTRAP_SERVERS;
        # the split stops after the section so names keep their own underscores.
        env_nested_delimiter="_",
        env_nested_max_split=1,
        case_sensitive=False,
        extra="ignore",
        secrets_dir_missing="ok",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        secrets_dir = Path(os.environ.get(SECRETS_DIR_VARIABLE, DEFAULT_SECRETS_DIR))
        return (
            init_settings,
            env_settings,
            NestedSecretsSettingsSource(
                file_secret_settings,
                secrets_dir=secrets_dir,
                secrets_nested_delimiter="_",
                secrets_dir_missing="ok",
            ),
            _YamlWithoutSecrets(settings_cls, yaml_file=config_file),
        )

    @model_validator(mode="after")
    def _translator_has_credentials(self) -> Settings:
        if self.translation.provider == "deepl" and self.deepl.auth_key is None:
            raise ValueError("translation provider deepl needs NOTIFIER_DEEPL_AUTH_KEY")
        return self

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets shown only as set or not."""
        data = self.model_dump(mode="json")
        for section, name in SECRET_FIELDS:
            data[section][name] = "**********" if data[section][name] else None
        return data


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
