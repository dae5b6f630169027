"""The layering of docs/architecture.md, read from fswl/'s imports with ``ast``.

Every import counts as an arrow: at the top of a module, under
``if TYPE_CHECKING:`` (a type a module is written against is a dependency
of its design) and inside functions (a lazy import is still an import).
Imports are resolved as /work/shared/tools/archcheck.py resolves them, so
the circles and counts here agree with that tool's.

The limits other branches of issue 15 are still reaching are each a test of
their own marked ``xfail(strict=True)``: when the branch lands, the test
passes, strict makes that a failure, and the mark is removed. The tests
beside them hold the line meanwhile: no new circle, no new module taking
a flock, no other module growing past the size limit.
"""

from __future__ import annotations

import ast
import configparser
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "fswl"

#: The parts of fswl (the name below ``fswl.``) by layer, top to bottom (docs/architecture.md).
#: An import may go down, or sideways inside one layer without a circle.
LAYERS: dict[str, tuple[int, str]] = {
    "cli": (6, "cli"),
    "__main__": (6, "cli"),
    "app": (5, "app"),
    **{part: (4, "services") for part in
       ("dns", "policy", "smtp", "web", "verify", "sync", "populate", "reputation", "export")},
    "serving": (3, "serving"),
    "index": (2, "index, store"),
    "store": (2, "index, store"),
    "util": (1, "util"),
    **{part: (0, "names, errors, config") for part in
       ("", "names", "errors", "config", "defaults", "constants")},  # "": fswl/__init__.py (__version__)
}
#: Inside one layer: (lower part, higher part) pairs whose arrow may only go from the higher to the lower.
SIDEWAYS_DOWN_ONLY = {("store", "index"): "fswl.index may import fswl.store, never the reverse"}
#: The only modules at the top of fswl/ (beside __init__).
TOP_LEVEL = {"names", "errors", "config", "defaults", "constants", "__main__"}

MAX_LINES = 400
MAX_RENAMING_MODULES = 3
MAX_FLOCKING_MODULES = 2


@dataclass(frozen=True)
class Arrow:
    source: str  #: the importing module, dotted
    target: str  #: the imported module or package, dotted
    path: Path
    line: int


@dataclass(frozen=True)
class Module:
    name: str  #: dotted; a package is named for its folder
    path: Path
    source: str


@lru_cache(maxsize=1)
def modules() -> tuple[Module, ...]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(Module(".".join(parts), path, path.read_text(encoding="utf-8")))
    return tuple(found)


@lru_cache(maxsize=1)
def arrows() -> tuple[Arrow, ...]:
    """Every import of an fswl module by another, with its line."""
    known = {m.name for m in modules()}
    out = []
    for module in modules():
        for node in ast.walk(ast.parse(module.source, str(module.path))):
            for target in _targets(module, node, known):
                out.append(Arrow(module.name, target, module.path, node.lineno))
    return tuple(out)


def _targets(module: Module, node: ast.AST, known: set[str]) -> set[str]:
    """The fswl modules one import statement names (``from p import x``: p, and p.x if x is a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package, up level - 1
            package = module.name.split(".")
            if module.path.name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    else:
        return set()
    targets = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module.name and (name == "fswl" or name.startswith("fswl.")):
            targets.add(name)
    return targets


def part(name: str) -> str:
    """``fswl.store.seen`` -> ``store``; ``fswl`` -> ``""``."""
    return name.split(".")[1] if "." in name else ""


def graph() -> dict[str, set[str]]:
    """Module -> modules it imports, without a module's arrows to a package that holds it.

    Importing a package from inside it runs the package's ``__init__``, which
    imports its own submodules: that pair is not a circle of design.
    """
    edges: dict[str, set[str]] = defaultdict(set)
    for arrow in arrows():
        if not arrow.source.startswith(arrow.target + "."):
            edges[arrow.source].add(arrow.target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.add(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def module_circles() -> set[frozenset[str]]:
    return set(circles(graph()))


def _show(circle: frozenset[str]) -> str:
    return " <-> ".join(sorted(circle))


# -- layers ------------------------------------------------------------------


def test_every_module_belongs_to_a_layer() -> None:
    strays = sorted({m.name for m in modules() if part(m.name) not in LAYERS})
    assert not strays, f"modules in no layer: {strays}; add their part to LAYERS here and to docs/architecture.md"


def test_imports_go_only_down_the_layers() -> None:
    broken = []
    for arrow in arrows():
        source, target = part(arrow.source), part(arrow.target)
        (low, low_name), (high, high_name) = LAYERS[source], LAYERS[target]
        where = f"{arrow.path.relative_to(REPO)}:{arrow.line}: {arrow.source} imports {arrow.target}"
        if high > low:
            broken.append(f"{where}: L{low} ({low_name}) may not import L{high} ({high_name}); imports go only down")
        elif (source, target) in SIDEWAYS_DOWN_ONLY:
            broken.append(f"{where}: {SIDEWAYS_DOWN_ONLY[source, target]}")
    assert not broken, "\n".join(broken)


def test_no_circle_between_service_packages() -> None:
    """dns may import export or export dns, not both: each service package builds on the others one way."""
    services = {name for name, (layer, _) in LAYERS.items() if layer == 4}
    edges: dict[str, set[str]] = defaultdict(set)
    why: dict[tuple[str, str], Arrow] = {}
    for arrow in arrows():
        source, target = part(arrow.source), part(arrow.target)
        if source != target and {source, target} <= services:
            edges[source].add(target)
            why.setdefault((source, target), arrow)
    found = []
    for circle in circles(edges):
        shown = [f"{a.path.relative_to(REPO)}:{a.line} ({a.source} -> {a.target})"
                 for (s, t), a in sorted(why.items()) if s in circle and t in circle]
        found.append(f"{_show(circle)}: {', '.join(shown)}")
    assert not found, "\n".join(found)


def test_only_the_core_modules_stand_at_the_top() -> None:
    loose = sorted(m.path.stem for m in modules()
                   if m.path.parent == PACKAGE and m.path.name != "__init__.py" and m.path.stem not in TOP_LEVEL)
    assert not loose, f"top-level modules beside {sorted(TOP_LEVEL)}: {loose}; give each its package"


def test_every_folder_is_a_package_the_install_includes() -> None:
    """setup.cfg's ``packages = find:`` leaves a folder without ``__init__.py`` out of a wheel."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["options"]["packages"].strip() == "find:"
    folders = sorted({m.path.parent for m in modules()})
    missing = [str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").exists()]
    assert not missing, f"folders an install leaves out (no __init__.py): {missing}"


# -- circles between modules -------------------------------------------------

#: Circles other branches of issue 15 are removing today: circle -> who.
PENDING_CIRCLES = {
    frozenset({"fswl.store.links", "fswl.store.whitelist"}): "the links helper (issue 14) untangles links from whitelist",
    frozenset({"fswl.sync.records", "fswl.sync.signing"}): "the links helper moves the one shared constant",
    frozenset({"fswl.sync.batches", "fswl.sync.digests"}): "the links helper splits the spool by job",
    frozenset({"fswl.dns.resolver", "fswl.dns.wire"}): "the dns helper hands the fast path the decision, not the resolver",
}


def test_no_module_circle_beyond_those_being_removed() -> None:
    new = sorted(_show(c) for c in module_circles() - set(PENDING_CIRCLES))
    assert not new, "import circles: " + "; ".join(new)


def _assert_no_circle(members: set[str]) -> None:
    circle = frozenset(members)
    within = [c for c in module_circles() if circle <= c]
    assert not within, f"still a circle: {_show(within[0])}"


def test_no_circle_store_links_whitelist() -> None:
    _assert_no_circle({"fswl.store.links", "fswl.store.whitelist"})


@pytest.mark.xfail(strict=True, reason=PENDING_CIRCLES[frozenset({"fswl.sync.records", "fswl.sync.signing"})])
def test_no_circle_sync_records_signing() -> None:
    _assert_no_circle({"fswl.sync.records", "fswl.sync.signing"})


@pytest.mark.xfail(strict=True, reason=PENDING_CIRCLES[frozenset({"fswl.sync.batches", "fswl.sync.digests"})])
def test_no_circle_sync_batches_digests() -> None:
    _assert_no_circle({"fswl.sync.batches", "fswl.sync.digests"})


@pytest.mark.xfail(strict=True, reason=PENDING_CIRCLES[frozenset({"fswl.dns.resolver", "fswl.dns.wire"})])
def test_no_circle_dns_resolver_wire() -> None:
    _assert_no_circle({"fswl.dns.resolver", "fswl.dns.wire"})


# -- sizes and primitives ----------------------------------------------------

#: Over the limit today, in a file another branch owns: module -> who.
PENDING_BIG = {"fswl.store.whitelist": "404 lines; the links helper (issue 14) owns fswl/store/whitelist.py"}


def line_counts() -> dict[str, int]:
    return {m.name: m.source.count("\n") for m in modules()}  # as archcheck counts


def test_no_other_module_over_the_size_limit() -> None:
    big = sorted(f"{name} {n}" for name, n in line_counts().items() if n > MAX_LINES and name not in PENDING_BIG)
    assert not big, f"modules over {MAX_LINES} lines (split by job): {big}"


def test_store_whitelist_within_the_size_limit() -> None:
    assert line_counts()["fswl.store.whitelist"] <= MAX_LINES


def using(call: str) -> set[str]:
    """Modules whose text calls ``call`` (``os.replace(``, ``flock(``), as archcheck counts them."""
    return {m.name for m in modules() if call in m.source}


def test_few_modules_rename_files() -> None:
    """Renaming into place is fswl.util.atomic's job (write_atomic, replacing, replace)."""
    renaming = sorted(using("os.replace(") | using("os.rename("))
    assert len(renaming) <= MAX_RENAMING_MODULES, f"{len(renaming)} modules rename files: {renaming}"


#: Modules taking flocks today; the primitives helper moves them onto fswl/util/lock.py.
FLOCKING_TODAY = {
    "fswl.populate.sources", "fswl.store.changelog", "fswl.store.events", "fswl.sync.acks",
    "fswl.sync.batches", "fswl.sync.handedits", "fswl.sync.peers", "fswl.verify.caps",
}


def test_no_new_module_takes_a_flock() -> None:
    new = sorted(using("flock(") - FLOCKING_TODAY)
    assert not new, f"modules taking flocks of their own: {new}; take fswl.util.lock's instead"


@pytest.mark.xfail(strict=True, reason="8 modules take flocks today; the primitives helper brings them onto "
                                       "fswl/util/lock.py (and the logs onto fswl/util/applog.py)")
def test_few_modules_take_flocks() -> None:
    flocking = sorted(using("flock("))
    assert len(flocking) <= MAX_FLOCKING_MODULES, f"{len(flocking)} modules take flocks: {flocking}"
