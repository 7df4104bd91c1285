"""Per-delivery Reply-To addresses: they name their delivery, survive mail systems, and can't
be pointed at another conversation."""

from __future__ import annotations

import pytest

from notifier.domain.reply_addresses import InvalidReplyAddress, delivery_of, reply_address

SECRET = b"reply-secret"
DELIVERY = "6f1c2a9e-8b7d-5c4e-9a3b-2d1e0f9a8b7c"


def test_an_address_names_its_delivery() -> None:
    address = reply_address(DELIVERY, "reply.springfield.example", SECRET)
    assert address.endswith("@reply.springfield.example")
    assert delivery_of(address, SECRET) == DELIVERY


def test_the_local_part_fits_the_64_characters_mail_allows() -> None:
    local_part = reply_address(DELIVERY, "r.example", SECRET).split("@")[0]
    assert len(local_part) <= 64
    assert local_part == local_part.lower()


def test_a_mail_server_changing_the_case_does_not_break_it() -> None:
    address = reply_address(DELIVERY, "reply.springfield.example", SECRET)
    assert delivery_of(address.upper(), SECRET) == DELIVERY


@pytest.mark.parametrize("position", [6, 20, 47])
def test_an_edited_address_is_refused(position: int) -> None:
    address = reply_address(DELIVERY, "r.example", SECRET)
    swapped = "b" if address[position] != "b" else "c"
    forged = address[:position] + swapped + address[position + 1 :]
    with pytest.raises(InvalidReplyAddress):
        delivery_of(forged, SECRET)


@pytest.mark.parametrize(
    "address",
    [
        "no-reply@springfield.example",
        "reply+@r.example",
        "reply+!!!notbase32@r.example",
        "reply+abc@r.example",
        "",
    ],
)
def test_addresses_we_did_not_make_are_refused(address: str) -> None:
    with pytest.raises(InvalidReplyAddress):
        delivery_of(address, SECRET)


def test_another_deployments_secret_does_not_read_it() -> None:
    address = reply_address(DELIVERY, "r.example", SECRET)
    with pytest.raises(InvalidReplyAddress):
        delivery_of(address, b"another-secret")
