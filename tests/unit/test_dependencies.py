"""Services depend one way: a service may import another service's contract only, and shipping imports
nothing of the order service (the order imports the shipment's contract, as a parent depends on its child)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("order_service", "shipping_service")


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


# Parsed as the module is collected, before any test runs. On CPython 3.11, ast.parse can fail with a spurious
# "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905) late in a long session: one full
# ./dev test run met it here, after the integration suite.
IMPORTS = {path: imported_modules(path) for package in (*SERVICES, "common") for path in (ROOT / package).glob("*.py")}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_the_contract_of_another(service):
    for path in (ROOT / service).glob("*.py"):
        for module in IMPORTS[path]:
            owner = module.split(".")[0]
            if owner in SERVICES and owner != service:
                assert module.startswith(f"{owner}.contract"), f"{path.relative_to(ROOT)} imports {module}"


def test_shipping_imports_nothing_of_the_order_service():
    for path in (ROOT / "shipping_service").glob("*.py"):
        assert not [m for m in IMPORTS[path] if m.split(".")[0] == "order_service"], path.name


def test_common_imports_no_service():
    for path in (ROOT / "common").glob("*.py"):
        assert not [m for m in IMPORTS[path] if m.split(".")[0] in SERVICES + ("gateway",)], path.name
