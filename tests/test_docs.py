"""The README's settings table stays true to the Settings model."""

from __future__ import annotations

import re
from pathlib import Path

from notifier.config import Settings

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
