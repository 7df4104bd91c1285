"""An import-linter contract type: these modules import only the standard library (and their
own package, which the other contracts govern). pyproject.toml registers it as
``stdlib_only`` for the domain.

import-linter's own contracts name what may not be imported; "only the standard library" is
the complement of every installed package, a list that would drift with each dependency
added. This asks the interpreter's ``sys.stdlib_module_names`` instead, so a new dependency
is refused in the domain without anyone editing the configuration."""

from __future__ import annotations

import sys
from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.contract import InvalidContractOptions


class StandardLibraryOnlyContract(Contract):
    type_name = "stdlib_only"

    source_modules = fields.ListField(subfield=fields.ModuleField())

    def validate(self) -> None:
        # Without the external packages the graph holds no third-party import to find, and
        # the contract would be kept whatever the modules import.
        if str(self.session_options.get("include_external_packages")).lower() != "true":
            raise InvalidContractOptions(
                {"source_modules": "needs include_external_packages = true in [tool.importlinter]"}
            )

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        own_packages = set(self.session_options["root_packages"])
        allowed = own_packages | set(sys.stdlib_module_names)
        illegal: list[dict[str, Any]] = []
        for source in self.source_modules:
            if source.name not in graph.modules:
                raise ValueError(f"Module '{source.name}' does not exist.")
            for importer in sorted({source.name} | graph.find_descendants(source.name)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported.split(".")[0] in allowed:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    illegal.append(
                        {
                            "importer": importer,
                            "imported": imported,
                            "line_numbers": tuple(d["line_number"] for d in details),
                        }
                    )
        return ContractCheck(kept=not illegal, metadata={"illegal_imports": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Imports from outside the standard library:", bold=False)
        output.new_line()
        for link in check.metadata["illegal_imports"]:
            lines = ", ".join(map(str, link["line_numbers"]))
            line = f"- {link['importer']} -> {link['imported']} (l.{lines})"
            output.print_error(line, bold=False)
        output.new_line()
