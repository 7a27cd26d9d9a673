"""The conversation core imports nothing of the bot but itself and a few leaf modules, so no
import circle can tie it to the modules that implement its ports (documents, identity, ...).

Imports are read with `ast`, every one of them: module level, inside functions, and under
`if TYPE_CHECKING:` (a circle of type-only imports is still a circle for mypy and readers).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "bot" / "core"
# Leaf modules the core may use: each imports nothing of the bot outside this list (checked
# below), so allowing them cannot close a circle.
ALLOWED_LEAVES = ("bot.i18n", "bot.timezones", "bot.settings")


def imported_modules(source: str, module: str) -> set[str]:
    """Every module an import statement in `source` names (relative ones resolved)."""
    found: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            # "from bot import documents" imports the module bot.documents.
            found.update(f"{name}.{alias.name}" for alias in node.names if name == "bot")
    return found


def outside_core(modules: set[str]) -> set[str]:
    """The bot modules among `modules` that are neither the core nor an allowed leaf."""
    return {
        name
        for name in modules
        if name.startswith("bot.")  # "from bot import x" is counted as bot.x
        and name != "bot.core"
        and not name.startswith("bot.core.")
        and name not in ALLOWED_LEAVES
    }


def module_name(path: Path) -> str:
    """The dotted name of a source file under the repository."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_core_imports_only_itself_and_leaf_modules() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 5  # engine, flow, messages, capabilities, ports (and __init__)
    offending = {
        module_name(path): sorted(
            outside_core(imported_modules(path.read_text(), module_name(path)))
        )
        for path in files
    }
    assert {name: bad for name, bad in offending.items() if bad} == {}


def test_the_allowed_leaves_import_nothing_else_of_the_bot() -> None:
    for leaf in ALLOWED_LEAVES:
        path = ROOT / (leaf.replace(".", "/") + ".py")
        assert outside_core(imported_modules(path.read_text(), leaf)) == set(), leaf


def test_the_check_sees_type_only_and_nested_imports() -> None:
    circle = (
        "from typing import TYPE_CHECKING\n"
        "from bot.i18n import _\n"
        "from .messages import Outbound\n"
        "if TYPE_CHECKING:\n"
        "    from bot.documents import BlobStore\n"
        "def later():\n"
        "    import bot.identity\n"
        "    from bot import phone_sender\n"
    )
    found = outside_core(imported_modules(circle, "bot.core.flow"))
    assert found == {"bot.documents", "bot.identity", "bot.phone_sender"}
