"""The guard rails' own guards: every top-level module is placed in a layer, and the
stdlib_only contract (tests/import_contracts.py) refuses what it should."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter.domain.contract import InvalidContractOptions

from tests.import_contracts import StandardLibraryOnlyContract

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "notifier"


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_every_top_level_module_sits_in_a_layer() -> None:
    top_level = {
        f"notifier.{path.stem}" for path in PACKAGE.glob("*.py") if path.name != "__init__.py"
    } | {f"notifier.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    (layers,) = (c["layers"] for c in _contracts() if c["type"] == "layers")
    assert isinstance(layers, list)
    layered = {name for layer in layers for name in re.split(r"\s*[|:]\s*", layer.strip())}
    assert top_level - layered == set(), "place each new top-level module in a layer"


def _graph(imports: dict[str, list[str]]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    graph.add_module("shop")
    graph.add_module("shop.domain")
    for importer, imported_modules in imports.items():
        graph.add_module(importer)
        for imported in imported_modules:
            if imported not in graph.modules:
                # As grimp adds a package from outside: one node for it and its modules.
                graph.add_module(imported, is_squashed=not imported.startswith("shop"))
            graph.add_import(
                importer=importer,
                imported=imported,
                line_number=3,
                line_contents=f"import {imported}",
            )
    return graph


def _contract(include_external_packages: bool = True) -> StandardLibraryOnlyContract:
    return StandardLibraryOnlyContract(
        name="The domain imports only the standard library",
        session_options={
            "root_packages": ["shop"],
            "include_external_packages": include_external_packages,
        },
        contract_options={"source_modules": ["shop.domain"]},
    )


def test_a_domain_of_standard_library_and_own_imports_keeps_the_contract() -> None:
    graph = _graph({"shop.domain.model": ["dataclasses", "enum", "shop.domain.rules"]})

    assert _contract().check(graph, verbose=False).kept


def test_a_third_party_import_anywhere_in_the_domain_breaks_the_contract() -> None:
    graph = _graph({"shop.domain.model": ["enum"], "shop.domain.rules": ["yaml", "re"]})

    check = _contract().check(graph, verbose=False)

    assert not check.kept
    assert check.metadata["illegal_imports"] == [
        {"importer": "shop.domain.rules", "imported": "yaml", "line_numbers": (3,)}
    ]


def test_the_contract_refuses_a_graph_without_external_packages() -> None:
    # Such a graph has no third-party import in it: the contract would be kept whatever.
    with pytest.raises(InvalidContractOptions):
        _contract(include_external_packages=False)
