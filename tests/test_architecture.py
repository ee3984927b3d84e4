"""The layout's rules (issue 14), checked on the source: every import, at any level (inside
functions too), of every module under ``broadcasts/`` and ``kashiwa/``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("broadcasts", "kashiwa")
# The LINE sandbox is development tooling, a package of its own (``line_sandbox/``).
SANDBOX = ("line_sandbox", "broadcasts.line.sandbox", "jma_sandbox")
# Development tooling that may use the LINE sandbox: its own command and the demo seeder.
SANDBOX_ALLOWED = {
    "broadcasts.management.commands.line_sandbox",
    "broadcasts.management.commands.seed_demo",
}
# Layers that tasks import: they enqueue by name (services/enqueue.py), never import tasks.
BELOW_TASKS = ("broadcasts.services", "broadcasts.selectors", "broadcasts.models")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(source: str, package: str) -> set[str]:
    """Absolute names of everything ``source`` (a module of ``package``) imports: ``from a
    import b`` gives ``a`` and ``a.b``, since ``b`` may be a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _modules() -> dict[str, set[str]]:
    return {
        _module_name(path): _imports(path)
        for top in PRODUCT
        for path in sorted((ROOT / top).rglob("*.py"))
        if "migrations" not in path.parts
    }


def _is_within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_check_sees_relative_and_function_level_imports():
    source = "def f():\n    from .. import tasks\n    from ..tasks.citizens import x\n"
    found = _imports_in(source, "broadcasts.services")
    assert {"broadcasts.tasks", "broadcasts.tasks.citizens"} <= found


def test_services_selectors_and_models_never_import_tasks():
    offenders = sorted(
        f"{module} imports {imported}"
        for module, imports in _modules().items()
        if _is_within(module, BELOW_TASKS)
        for imported in imports
        if _is_within(imported, ("broadcasts.tasks",))
    )
    assert offenders == []


def test_only_tools_import_the_line_sandbox():
    offenders = sorted(
        f"{module} imports {imported}"
        for module, imports in _modules().items()
        if not _is_within(module, SANDBOX) and module not in SANDBOX_ALLOWED
        for imported in imports
        if _is_within(imported, SANDBOX)
    )
    assert offenders == []


def test_every_beat_entry_names_a_registered_task():
    """A beat entry with a name no worker knows is dropped by the worker as unregistered
    (the hourly insight refresh named ``broadcasts.tasks.refresh_insight`` never ran)."""
    from django.conf import settings

    from kashiwa.celery import app

    app.loader.import_default_modules()
    for entry, spec in settings.CELERY_BEAT_SCHEDULE.items():
        assert spec["task"] in app.tasks, f"beat entry {entry!r}: {spec['task']} is not a task"
