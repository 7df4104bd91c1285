"""The benchmark's world: a directory of districts and people, the send requests they write,
and how many texts and emails each request should produce.

The mix is meant to look like a school district's, not to be uniform:

- guardians (60 %) are texted: most have a phone only, some an email too, one in ten
  prefers email; one in eight shares a phone with another guardian of the family (usually in
  the same language, so one labelled text reaches both), a few share a family email;
- staff (15 %) are emailed: all have an email, half a phone, one in ten prefers SMS;
- students (25 %) are mostly app-only (the inbox copy alone); older ones have an email;
- each district offers a few of the languages notifier has catalogs for, and a fifth of
  the people read one of them; every request carries the translations its district needs,
  so no translator is called.

``expected_sends`` applies the contract's resolution rules (shared/spec/contract.md) to a
request, including "one text or email per shared address and language" and "the sender is
never notified", so that a lost delivery can be told from a correct merge.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.fakes import marker

LANGUAGES = ("es", "vi", "zh-Hans", "ar", "ht", "pt", "ru", "so", "fr", "ko", "tl", "uk")
FIRST_NAMES = (
    "Avery", "Blake", "Carmen", "Dennis", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jamal",
    "Kim", "Lucía", "Maya", "Nguyen", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
)  # fmt: skip
# Short bodies: a text must stay within the district's three segments even in UCS-2
# (Arabic, Chinese), or notifier would shorten it, which is a different code path.
BODIES = {
    "en": "Field trip forms are due Friday. Reply here with questions.",
    "es": "Los formularios de la excursión vencen el viernes.",
    "vi": "Phiếu đi dã ngoại phải nộp trước thứ Sáu.",
    "zh-Hans": "郊游表格请于周五前交回。",
    "ar": "يجب تسليم استمارات الرحلة يوم الجمعة.",
    "ht": "Fòm pou sòti a dwe rive vandredi.",
    "pt": "Os formulários do passeio vencem na sexta-feira.",
    "ru": "Формы на экскурсию нужно сдать до пятницы.",
    "so": "Foomamka safarka waa in la soo celiyaa Jimcaha.",
    "fr": "Les formulaires de sortie sont à rendre vendredi.",
    "ko": "현장학습 신청서는 금요일까지 제출하세요.",
    "tl": "Ang mga form ng field trip ay dapat ibigay sa Biyernes.",
    "uk": "Форми на екскурсію потрібно здати до пʼятниці.",
}
UPDATED_AT = "2026-11-20T10:00:00Z"


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    district_id: str
    role: str
    language: str
    preferred_channel: str | None
    phone: str | None
    email: str | None
    first_name: str

    def wire(self) -> dict[str, Any]:
        """recipient/1."""
        return {
            "schema": "recipient/1",
            "id": self.id,
            "district_id": self.district_id,
            "display_name": f"{self.first_name} {self.id[-4:]}",
            "first_name": self.first_name,
            "role": self.role,
            "language": self.language,
            "preferred_channel": self.preferred_channel,
            "phone": self.phone,
            "email": self.email,
            "app": True,
            "updated_at": UPDATED_AT,
        }


@dataclass(frozen=True, slots=True)
class District:
    id: str
    languages: tuple[str, ...]
    default_channel: str
    people: tuple[Person, ...]
    staff: tuple[Person, ...]

    def wire(self) -> dict[str, Any]:
        """district/1."""
        return {
            "schema": "district/1",
            "id": self.id,
            "name": f"Bench District {self.id[-2:]}",
            "default_channel": self.default_channel,
            "role_channels": {"guardian": "sms"},
            "default_language": "en",
            "languages": list(self.languages),
            "sms_label": True,
            "max_recipients": 15,
            "timezone": "America/Chicago",
            "sms_sender": "MG" + "0" * 32,
            "email_from": {"email": "no-reply@bench.example", "name": "Bench Schools"},
        }


@dataclass(frozen=True, slots=True)
class Directory:
    districts: tuple[District, ...]

    @property
    def people(self) -> list[Person]:
        return [person for district in self.districts for person in district.people]


def build_directory(recipients: int, districts: int, seed: int) -> Directory:
    # Seeded: every run and every scenario loads the same directory (not for secrets).
    chooser = random.Random(seed)  # noqa: S311
    per_district = max(1, recipients // districts)
    built = []
    for d in range(districts):
        district_id = f"d-bench-{d:02d}"
        offered = ("en", *chooser.sample(LANGUAGES, 3 + d % 4))
        people: list[Person] = []
        for index in range(per_district):
            people.append(_person(chooser, district_id, d * per_district + index, offered, people))
        built.append(
            District(
                id=district_id,
                languages=offered,
                # A few districts reach dual-contact staff and students by text by default.
                default_channel="sms" if d % 5 == 4 else "email",
                people=tuple(people),
                staff=tuple(p for p in people if p.role == "staff"),
            )
        )
    return Directory(tuple(built))


def _person(
    chooser: random.Random,
    district_id: str,
    number: int,
    offered: tuple[str, ...],
    earlier: list[Person],
) -> Person:
    first_name = FIRST_NAMES[number % len(FIRST_NAMES)]
    # Mostly the district's default; some speak one of its other languages, a few one it
    # does not offer (they get the default: rule 4).
    language = "en"
    if chooser.random() < 0.2:
        language = chooser.choice(offered[1:])
    elif chooser.random() < 0.02:
        language = "de"
    phone = f"+1617{number:07d}"
    email = f"p{number:05d}@families.bench.example"
    draw = chooser.random()
    if draw < 0.60:
        role, preferred = "guardian", ("email" if chooser.random() < 0.1 else None)
        phones = [(p, p.phone) for p in earlier[-6:] if p.role == "guardian" and p.phone]
        if phones and chooser.random() < 0.125:
            # A family: this guardian shares the phone of one just before.
            family, phone = phones[-1]
            # Mostly one language per family; sometimes not (then a text each).
            if chooser.random() < 0.8:
                language = family.language
            if family.email and chooser.random() < 0.5:
                email = family.email
        has_email = chooser.random() < 0.35 or preferred == "email"
        return Person(
            f"guardian-{number:05d}",
            district_id,
            role,
            language,
            preferred,
            phone,
            email if has_email else None,
            first_name,
        )
    if draw < 0.75:
        email = f"s{number:05d}@staff.bench.example"
        preferred = "sms" if chooser.random() < 0.1 else None
        has_phone = chooser.random() < 0.5 or preferred == "sms"
        return Person(
            f"staff-{number:05d}",
            district_id,
            "staff",
            language,
            preferred,
            phone if has_phone else None,
            email,
            first_name,
        )
    email = f"st{number:05d}@students.bench.example"
    has_email = chooser.random() < 0.3
    return Person(
        f"student-{number:05d}",
        district_id,
        "student",
        language,
        None,
        None,
        email if has_email else None,
        first_name,
    )


@dataclass(frozen=True, slots=True)
class Request:
    number: int
    payload: dict[str, Any]
    created_at: float
    """Unix seconds, as in the payload's created_at."""
    notifications: tuple[Notification, ...]
    """The texts and emails it should make (the providers' messages)."""
    inbox: int
    """App inbox copies it should make (every notified person)."""

    @property
    def sends(self) -> int:
        return len(self.notifications)


class RequestFactory:
    """Send requests of 1-15 recipients in one district's conversation, numbered in order;
    ``make`` stamps created_at with the moment it is called (the publish time)."""

    def __init__(self, directory: Directory, run_id: str, seed: int) -> None:
        self._directory = directory
        self._run_id = run_id
        self._chooser = random.Random(seed)  # noqa: S311 (a reproducible load)
        self._by_id = {person.id: person for person in directory.people}
        self._households: dict[str, list[Person]] = {}
        for person in directory.people:
            if person.role == "guardian" and person.phone:
                self._households.setdefault(person.phone, []).append(person)
        self.next_number = 0

    def make(self) -> Request:
        number = self.next_number
        self.next_number += 1
        chooser = self._chooser
        district = chooser.choice(self._directory.districts)
        size = chooser.randint(1, min(15, len(district.people)))
        members = chooser.sample(district.people, size)
        # A conversation about a child usually includes both guardians of the family.
        for person in list(members):
            for relative in self._households.get(person.phone or "", ()):
                if relative not in members and len(members) < 15 and chooser.random() < 0.7:
                    members.append(relative)
        sender = chooser.choice(district.staff) if district.staff else members[0]
        # The sender is often a participant of the conversation too; never notified.
        if chooser.random() < 0.3 and sender not in members:
            members[chooser.randrange(len(members))] = sender
        tag = marker(number)
        created_at = time.time()
        payload = {
            "schema": "send-request/1",
            "request_id": str(uuid.uuid4()),
            "message_id": f"bench-{self._run_id}-{tag}",
            "conversation_id": f"conv-{district.id}-{chooser.randrange(200):03d}",
            "district_id": district.id,
            "kind": "conversation.message",
            "sender": {"id": sender.id, "display_name": "Ms. Rivera", "role": "staff"},
            "body": f"{tag} {BODIES['en']}",
            "language": "en",
            "translations": {
                language: f"{tag} {BODIES[language]}"
                for language in district.languages
                if language != "en"
            },
            "recipients": [{"id": person.id} for person in members],
            "created_at": rfc3339(datetime.fromtimestamp(created_at, UTC)),
        }
        notifications, inbox = expected_sends(payload, district, self._by_id)
        return Request(number, payload, created_at, notifications, inbox)


@dataclass(frozen=True, slots=True)
class Notification:
    """One text or email a request should produce: what a provider is asked to send."""

    channel: str
    """sms or email."""
    address: str
    body: str
    """The text in the language the address is written to, the request's marker in it."""


def expected_sends(
    payload: dict[str, Any], district: District, people: dict[str, Person]
) -> tuple[tuple[Notification, ...], int]:
    """(texts and emails, inbox copies) the contract's rules give for this request, with
    every contact point active and nobody muted."""
    sender = payload["sender"]["id"]
    notified = list(dict.fromkeys(r["id"] for r in payload["recipients"] if r["id"] != sender))
    addresses: dict[tuple[str, str, str], None] = {}
    for recipient_id in notified:
        person = people[recipient_id]
        channel = choose_channel(person, district)
        if channel is None:
            continue
        address = person.phone if channel == "sms" else person.email
        assert address is not None
        language = person.language if person.language in district.languages else "en"
        # One text or email per shared address and language (delivery.py's grouping).
        addresses[(channel, address, language)] = None
    translations = payload["translations"]
    notifications = tuple(
        Notification(channel, address, translations.get(language, payload["body"]))
        for channel, address, language in addresses
    )
    return notifications, len(notified)


def choose_channel(person: Person, district: District) -> str | None:
    """Rule 1: preferred, else the role's channel, else the district default, else the one
    contact there is; None for the app only."""
    reachable = {"sms": person.phone, "email": person.email}
    if person.preferred_channel and reachable.get(person.preferred_channel):
        return person.preferred_channel
    if person.role == "guardian" and person.phone:
        return "sms"
    if person.phone and person.email:
        return district.default_channel
    if person.email:
        return "email"
    if person.phone:
        return "sms"
    return None


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
