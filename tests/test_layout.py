"""The package tree shows the pipeline: stage subpackages, imports that only flow downstream,
small modules, and a README module table that names exactly the modules that exist."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "daemon" / "emomusic"

# Where each part sits in the flow; a module may import its own part and parts of a lower rank.
# Parts of the same rank (face/voice, mqtt/music) are siblings and must not import each other.
RANK = {
    "messages": 0, "labels": 0, "queues": 0, "runtime": 0, "audio": 0, "config": 0, "__init__": 0,
    "listener": 1,
    "commands": 2, "sources": 2,
    "face": 3, "voice": 3,
    "fusion": 4, "house": 4,
    "mqtt": 5, "music": 5,
    "analyze": 6,
    "web": 7,
    "service": 8,
    "cli": 9,
    "__main__": 10,
}
STAGES = ("sources", "face", "voice", "fusion", "mqtt", "music", "analyze", "web", "service", "cli")


def modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def part_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> set[str]:
    """Every emomusic part a module imports, lazy imports inside functions included."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "emomusic":
                names = [a.name for a in node.names]
            elif node.module.startswith("emomusic."):
                names = [node.module.split(".")[1]]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("emomusic.")]
        parts.update(n if n in RANK else "__init__" for n in names)
    return parts


def test_every_part_has_a_rank() -> None:
    assert {part_of(p) for p in modules()} <= set(RANK)


def test_imports_only_flow_downstream() -> None:
    wrong = []
    for path in modules():
        own = part_of(path)
        for dep in imported_parts(path) - {own}:
            if RANK[dep] >= RANK[own]:
                wrong.append(f"{path.relative_to(PKG)} imports {dep}")
    assert not wrong, wrong


def test_config_imports_nothing_else_from_the_package() -> None:
    for path in (PKG / "config").glob("*.py"):
        assert imported_parts(path) <= {"config"}, path


def test_no_module_over_400_lines() -> None:
    long = {str(p.relative_to(PKG)): n for p in modules() if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def test_top_level_is_small_and_stages_are_subpackages() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert len(top) <= 8, top
    for stage in STAGES:
        assert (PKG / stage / "__init__.py").is_file(), stage


def test_readme_module_table_matches_the_tree() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| stage | module | job |"):]
    table = table.split("\n\n")[0]
    listed = set(re.findall(r"`([\w/]+\.py)`", table))
    present = {str(p.relative_to(PKG)) for p in modules() if p.name not in ("__init__.py", "__main__.py")}
    assert present - listed == set(), "modules missing from the README table"
    assert {m for m in listed if not (PKG / m).is_file()} == set(), "README names modules that do not exist"


def test_version_comes_from_the_package_metadata() -> None:
    out = subprocess.run([sys.executable, "-m", "emomusic", "--version"], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == f"emomusic {version('emomusic')}"


def test_the_steady_daemon_imports_neither_package_metadata_nor_process_pools() -> None:
    """The version comes from the dist-info folder's name, and the scan's process pool is imported when a
    scan analyses files: importlib.metadata and concurrent.futures.process held 1.7 MB of a steady daemon
    that has nothing new to index (docs/PERFORMANCE.md)."""
    code = ("import sys, emomusic.cli.main, emomusic.service.daemon, emomusic.web.server, emomusic.music.scan, "
            "emomusic.mqtt.discovery; print(sorted(m for m in ('importlib.metadata', 'concurrent.futures.process', "
            "'multiprocessing') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_command_line_option_has_help_text() -> None:
    import argparse

    from emomusic.cli.main import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    walk(p, f"{name} {sub}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "emomusic")
    assert not missing


def test_config_toml_lists_every_environment_override() -> None:
    read = {m for p in modules() for m in re.findall(r"EMOMUSIC_[A-Z_]+", p.read_text())}
    header = (ROOT / "config.toml").read_text().split("\n[", 1)[0]
    assert read and {v for v in read if v not in header} == set()


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module's imports of other modules of the package, inside functions too."""
    names = {module_name(p): p for p in modules()}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps.update(t for t in targets if t in names and t != name)
        graph[name] = deps
    return graph


def test_no_import_circles() -> None:
    """No module reaches itself again through its imports."""
    graph = import_graph()
    circles = []
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                circles.append(" -> ".join([*trail[trail.index(d):], d]))
            elif d not in state:
                visit(d, [*trail, d])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not circles
