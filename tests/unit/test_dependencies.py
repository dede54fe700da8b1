"""Packages depend one way. A service may import another service's contract only, and shipping imports nothing of
the order service (the order imports the shipment's contract, as a parent depends on its child); the gateway knows
the services by their contracts; the client knows only the generated stubs; the tools above them (the local stack,
the lab) reach the services through contracts and the gateway's API."""

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
# Each package, and the first-party packages or modules it may import (a name allows its submodules).
MAY_IMPORT = {
    "common": {"common"},
    "shipping_service": {"common", "shipping_service"},
    "order_service": {"common", "order_service", "shipping_service.contract"},
    "gateway": {"common", "gateway", "orderlife", "order_service.contract", "shipping_service.contract"},
    "client": {"client", "orderlife"},
    "stack": {"stack", "client", "common", "orderlife", "order_service.contract", "shipping_service.contract"},
    "lab": {
        *("lab", "stack", "client", "common", "orderlife", "tests.support"),
        *("order_service.contract", "shipping_service.contract"),
    },
}
FIRST_PARTY = {*MAY_IMPORT, "orderlife", "tests"}
IMPORTS = {path: imported_modules(path) for package in MAY_IMPORT for path in (ROOT / package).glob("*.py")}


def allowed(module: str, rules: set[str]) -> bool:
    return any(module == rule or module.startswith(f"{rule}.") for rule in rules)


@pytest.mark.parametrize("package", MAY_IMPORT)
def test_each_package_imports_only_what_it_may(package):
    assert list((ROOT / package).glob("*.py")), f"{package} has no modules"
    for path in (ROOT / package).glob("*.py"):
        for module in IMPORTS[path]:
            if module.split(".")[0] in FIRST_PARTY and not allowed(module, MAY_IMPORT[package]):
                # "from pkg import name" also yields "pkg": allowed when pkg.name is.
                names = {m for m in IMPORTS[path] if m.startswith(f"{module}.")}
                assert names and all(allowed(m, MAY_IMPORT[package]) for m in names), (
                    f"{path.relative_to(ROOT)} imports {module}"
                )


def test_every_package_is_covered_by_the_rules():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(MAY_IMPORT)


def test_every_package_says_what_it_owns():
    for package in MAY_IMPORT:
        assert ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text())), package


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
