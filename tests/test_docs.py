"""The README's settings table stays true to the Settings model."""

from __future__ import annotations

import re
from pathlib import Path

from notifier.config import Settings
from notifier.entrypoints.docs import (
    asyncapi_document,
    documented_settings,
    openapi_document,
    render_asyncapi,
    render_openapi,
)

README = Path(__file__).parent.parent / "README.md"


def environment_variables() -> set[str]:
    return {
        f"NOTIFIER_{section}_{name}".upper()
        for section, field in Settings.model_fields.items()
        for name in field.annotation.model_fields  # type: ignore[union-attr]
    }


def test_readme_documents_every_setting_and_no_other() -> None:
    documented = set(re.findall(r"^\| `(NOTIFIER_[A-Z_]+)` \|", README.read_text(), re.MULTILINE))
    assert documented == environment_variables()


def test_readme_quick_start_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text
    assert "make test" in text


DOCS = Path(__file__).parent.parent / "docs"
CONTRACT_TOPICS = {
    "conversation.send-requests",
    "directory.recipients",
    "directory.districts",
    "conversation.state",
    "conversation.replies",
    "notifier.delivery-events",
    "notifier.dead-letter",
}


def test_committed_asyncapi_and_openapi_match_the_code() -> None:
    settings = documented_settings()
    assert (DOCS / "asyncapi.yaml").read_text() == render_asyncapi(settings), "run `make docs`"
    assert (DOCS / "openapi.json").read_text() == render_openapi(settings), "run `make docs`"


def test_asyncapi_describes_every_contract_topic_with_its_payload() -> None:
    document = asyncapi_document(documented_settings())
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == CONTRACT_TOPICS
    messages = document["components"]["messages"]
    payloads = {}
    for channel in document["channels"].values():
        [reference] = [m["$ref"] for m in channel["messages"].values()]
        payloads[channel["address"]] = messages[reference.rsplit("/", 1)[1]]["payload"].get(
            "$ref", ""
        )
    assert payloads["conversation.send-requests"].endswith("/SendRequestWire")
    assert payloads["directory.recipients"].endswith("/RecipientWire")
    assert payloads["directory.districts"].endswith("/DistrictWire")
    assert payloads["notifier.delivery-events"].endswith("/DeliveryEventWire")
    send_request = document["components"]["schemas"]["SendRequestWire"]
    assert send_request["properties"]["schema"]["const"] == "send-request/1"


def test_openapi_lists_the_ops_endpoints() -> None:
    paths = set(openapi_document(documented_settings())["paths"])
    assert {"/healthz", "/readyz", "/metrics"} <= paths
