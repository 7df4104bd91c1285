"""The documents of notifier's outside surface, generated from the code: AsyncAPI (from the
FastStream broker) and OpenAPI (from the FastAPI app). `make docs` writes them to docs/;
a test fails when the committed copies drift from the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from notifier.bootstrap import create_broker
from notifier.config import Settings
from notifier.domain.errors import RejectionCode
from notifier.entrypoints.consumer import input_subscriber
from notifier.entrypoints.http import create_app
from notifier.wire import (
    ConversationStateWire,
    DeliveryEventWire,
    DistrictWire,
    RecipientWire,
    ReplyWire,
    SendRequestWire,
)

VERSION = "0.1.0"
DESCRIPTION = (
    "notifier tells every participant of a school Conversation of a new message by SMS, "
    "email and the app inbox, in their language. Contract: shared/spec/contract.md."
)


def documented_settings() -> Settings:
    """The defaults alone: the documents must not depend on who generates them where."""
    return Settings.model_construct()


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    kafka = settings.kafka
    broker = create_broker(settings)  # never started: only described
    input_subscriber(broker, kafka)(_described_only)
    broker.publisher(
        kafka.delivery_events_topic,
        title="delivery-events",
        description="delivery-event/1: every state change of every delivery, keyed by "
        "conversation_id. event_id is stable per (delivery, status): drop repeats.",
        schema=DeliveryEventWire,
    )
    broker.publisher(
        kafka.replies_topic,
        title="replies",
        description="reply/1: a reply that came back by text, keyed by conversation_id; "
        "reply_id is stable per inbound provider message: drop repeats.",
        schema=ReplyWire,
    )
    broker.publisher(
        kafka.dead_letter_topic,
        title="dead-letter",
        description="The original bytes of unprocessable input, keyed as it was, with headers "
        "x-notifier-error (one of: "
        + ", ".join(code.value for code in RejectionCode)
        + "), x-notifier-detail, x-notifier-source-topic, -partition and -offset.",
    )
    document: dict[str, Any] = (
        AsyncAPI(broker, title="notifier", version=VERSION, description=DESCRIPTION)
        .to_specification()
        .to_jsonable()
    )

    # The subscriber reads raw records (to dead-letter what fails validation), so FastStream
    # sees no payload type; the contract's models are the payloads.
    payloads: dict[str, type[BaseModel]] = {
        kafka.send_requests_topic: SendRequestWire,
        kafka.recipients_topic: RecipientWire,
        kafka.districts_topic: DistrictWire,
        kafka.conversation_state_topic: ConversationStateWire,
    }
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, message in document["components"].get("messages", {}).items():
        for topic, model in payloads.items():
            if name.endswith(f":{topic}:SubscribeMessage"):
                schema = model.model_json_schema(
                    by_alias=True, ref_template="#/components/schemas/{model}"
                )
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                message["payload"] = {"$ref": f"#/components/schemas/{model.__name__}"}
    schemas.pop("EmptyPayload", None)
    # FastStream keeps publishers in no fixed order; sort so the committed copy is stable.
    for section in (document, document["components"]):
        for key in ("channels", "operations", "messages", "schemas"):
            if key in section:
                section[key] = dict(sorted(section[key].items()))
    return document


async def _described_only(message: Any) -> None:
    raise NotImplementedError("a documentation broker never consumes")


def openapi_document(settings: Settings) -> dict[str, Any]:
    return create_app(settings).openapi()


def write_documents(settings: Settings, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    asyncapi = directory / "asyncapi.yaml"
    openapi = directory / "openapi.json"
    asyncapi.write_text(render_asyncapi(settings))
    openapi.write_text(render_openapi(settings))
    return [asyncapi, openapi]


def render_asyncapi(settings: Settings) -> str:
    return yaml.safe_dump(asyncapi_document(settings), sort_keys=False, allow_unicode=True)


def render_openapi(settings: Settings) -> str:
    return orjson.dumps(openapi_document(settings), option=orjson.OPT_INDENT_2).decode() + "\n"
