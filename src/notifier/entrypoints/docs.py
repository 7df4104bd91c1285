"""The documents of notifier's outside surface, generated from the code: AsyncAPI (from the
FastStream broker) and OpenAPI (from the FastAPI app). `make docs` writes them to docs/;
a test fails when the committed copies drift from the code. The README's table of limits is
read from these two documents (`scripts/limits-table` prints it), so it says what they say.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml
from faststream.specification import AsyncAPI
from pydantic import BaseModel, TypeAdapter

from notifier.bootstrap import create_broker
from notifier.config import KafkaSettings, Settings
from notifier.domain.errors import RejectionCode
from notifier.entrypoints.consumer import input_subscriber
from notifier.entrypoints.http import create_app
from notifier.wire import (
    NUL,
    ConversationStateWire,
    DeliveryEventWire,
    DistrictWire,
    RecipientWire,
    RecordKey,
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


def inbound_payloads(kafka: KafkaSettings) -> dict[str, type[BaseModel]]:
    """Each input topic's payload model, in the contract's order."""
    return {
        kafka.send_requests_topic: SendRequestWire,
        kafka.recipients_topic: RecipientWire,
        kafka.districts_topic: DistrictWire,
        kafka.conversation_state_topic: ConversationStateWire,
    }


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
    payloads = inbound_payloads(kafka)
    compacted = {kafka.recipients_topic, kafka.districts_topic, kafka.conversation_state_topic}
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
                if topic in compacted:  # where a tombstone is keyed by what it deletes
                    message["bindings"] = {
                        "kafka": {
                            "key": TypeAdapter(RecordKey).json_schema(),
                            "bindingVersion": "0.4.0",
                        }
                    }
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


LIMITS_HEADER = "| Input | Field | Accepted | Note |"
_NUL_FREE = {"pattern": NUL}
Row = tuple[str, str, str, str]


def limits_table(settings: Settings) -> str:
    """The README's table of every limit on notifier's input: the record keys and payloads of
    the AsyncAPI document, the parameters and JSON bodies of the OpenAPI document, and the
    HTTP body sizes of the settings."""
    rows = [
        *_input_topic_rows(asyncapi_document(settings), settings.kafka),
        *_http_rows(openapi_document(settings)),
        *_body_size_rows(settings),
    ]
    lines = [LIMITS_HEADER, "| --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _input_topic_rows(document: dict[str, Any], kafka: KafkaSettings) -> Iterator[Row]:
    rows: list[Row] = []
    strings: list[dict[str, Any]] = []
    for topic in inbound_payloads(kafka):
        [channel] = [c for c in document["channels"].values() if c["address"] == topic]
        [reference] = [m["$ref"] for m in channel["messages"].values()]
        message = _resolve(document, reference)
        if key := message.get("bindings", {}).get("kafka", {}).get("key"):
            rows.append((f"`{topic}`", "record key", _accepted(key), key.get("description", "")))
            strings += _strings(document, key)
        payload = _resolve(document, message["payload"]["$ref"])
        for field, accepted, note in _field_limits(document, payload):
            rows.append((f"`{topic}`", f"`{field}`", accepted, note))
        strings += _strings(document, payload)
    if strings and all(string.get("not") == _NUL_FREE for string in strings):
        stripped = all(
            model.model_config.get("str_strip_whitespace")
            for model in inbound_payloads(kafka).values()
        )
        note = "Payload strings lose leading and trailing whitespace before lengths count."
        yield ("every input topic", "every string", "no U+0000 (NUL)", note if stripped else "")
    yield from rows


def _http_rows(document: dict[str, Any]) -> Iterator[Row]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"`{method.upper()} {path}`"
            for parameter in operation.get("parameters", []):
                schema = _non_null(document, parameter["schema"])
                if accepted := _accepted(schema):
                    name = f"`{parameter['name']}` ({parameter['in']})"
                    yield where, name, accepted, parameter.get("description", "")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                schema = _non_null(document, body["schema"])
                for field, accepted, note in _field_limits(document, schema):
                    yield where, f"`{field}` (body)", accepted, note


def _body_size_rows(settings: Settings) -> Iterator[Row]:
    # The BodyLimit middleware's (http.py), so in no route's schema.
    body_limits = {
        "max_body_bytes": "every HTTP request",
        "max_inbound_email_bytes": "`POST /webhooks/sendgrid/inbound…`",
    }
    for name, where in body_limits.items():
        limit = getattr(settings.http, name)
        description = type(settings.http).model_fields[name].description or ""
        yield where, "body", f"at most {limit} bytes (`NOTIFIER_HTTP_{name.upper()}`)", description


def _field_limits(
    document: dict[str, Any], schema: dict[str, Any], prefix: str = ""
) -> Iterator[tuple[str, str, str]]:
    """(field path, what it accepts, its description) of each constrained property, those of
    nested objects and of lists of objects included."""
    for name, declared in schema.get("properties", {}).items():
        field = prefix + name
        value = _non_null(document, declared)
        if "properties" in value:
            yield from _field_limits(document, value, f"{field}.")
            continue
        if accepted := _accepted(value):
            yield field, accepted, value.get("description", "")
        items = _non_null(document, value.get("items", {}))
        if "properties" in items:
            yield from _field_limits(document, items, f"{field}[].")


def _strings(document: dict[str, Any], schema: Any) -> list[dict[str, Any]]:
    """Every schema of free text under ``schema`` (not a constant or an enum), references
    followed."""
    if isinstance(schema, list):
        return [found for item in schema for found in _strings(document, item)]
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        return _strings(document, _resolve(document, schema["$ref"]))
    free_text = schema.get("type") == "string" and not {"const", "enum"} & schema.keys()
    found = [schema] if free_text else []
    for keyword, value in schema.items():
        if keyword not in ("default", "examples", "not"):
            found += _strings(document, value)
    return found


def _accepted(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if kind == "array":
        rules = [_count(schema.get("minItems"), schema.get("maxItems"), " items")]
        if each := _accepted(schema.get("items", {})):
            rules.append(f"each {each}")
        return ", ".join(rule for rule in rules if rule)
    if kind == "object":
        rules = [_count(schema.get("minProperties"), schema.get("maxProperties"), " entries")]
        if keys := _string_rules(schema.get("propertyNames", {})):
            rules.append(f"keys {keys}")
        patterned = schema.get("patternProperties", {}).values()
        value = next(iter(patterned), schema.get("additionalProperties"))
        if isinstance(value, dict) and (accepted := _accepted(value)):
            rules.append(f"values {accepted}")
        return "; ".join(rule for rule in rules if rule)
    if kind in ("integer", "number"):
        return _count(schema.get("minimum"), schema.get("maximum"), "")
    if kind == "string":
        return _string_rules(schema)
    return ""


def _string_rules(schema: dict[str, Any]) -> str:
    rules = [_count(schema.get("minLength"), schema.get("maxLength"), " characters")]
    if "format" in schema:
        rules.append(f"format `{schema['format']}`")
    if "pattern" in schema:
        rules.append(f"matching `{schema['pattern']}`")
    if "formatMinimum" in schema:
        rules.append(f"from {schema['formatMinimum']}")
    if "formatExclusiveMaximum" in schema:
        rules.append(f"before {schema['formatExclusiveMaximum']}")
    return ", ".join(rule for rule in rules if rule)


def _count(low: int | None, high: int | None, unit: str) -> str:
    if low is not None and high is not None:
        return f"{low}–{high}{unit}"
    if high is not None:
        return f"at most {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    return ""


def _non_null(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema a value has when it is given: an optional's non-null member, a reference
    resolved; the outer description kept."""
    members = [m for m in schema.get("anyOf", []) if m.get("type") != "null"]
    if len(members) == 1:
        outer = {k: v for k, v in schema.items() if k != "anyOf"}
        schema = {**_non_null(document, members[0]), **outer}
    if "$ref" in schema:
        outer = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**_resolve(document, schema["$ref"]), **outer}
    return schema


def _resolve(document: dict[str, Any], reference: str) -> dict[str, Any]:
    target: dict[str, Any] = document
    for part in reference.removeprefix("#/").split("/"):
        target = target[part]
    return target
