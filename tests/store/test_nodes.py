"""h5forge.store.nodes, the codec authors' kit: codec modules depend on it and the core only."""

from __future__ import annotations

import ast
from pathlib import Path

import h5forge
from h5forge.store import nodes

ROOT = Path(__file__).resolve().parents[2]
CODECS = ROOT / "src" / "h5forge" / "store" / "codecs"


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def test_every_public_name_of_the_kit_exists():
    assert len(nodes.__all__) == len(set(nodes.__all__))
    for name in nodes.__all__:
        assert getattr(nodes, name) is not None, name
    assert h5forge.store.nodes is nodes and nodes.Codec is h5forge.Codec


def test_no_codec_module_imports_a_sibling_codec():
    codec_modules = {p.stem for p in CODECS.glob("*.py")
                     if p.stem != "__init__" and not p.stem.startswith("_")}
    assert {"builtins", "numpy", "objects", "pandas", "neo"} <= codec_modules
    for stem in codec_modules:
        siblings = {f"h5forge.store.codecs.{other}" for other in codec_modules}
        bad = [m for m in _imported_modules(CODECS / f"{stem}.py") if m in siblings]
        assert not bad, f"codecs/{stem}.py imports {bad}"


def test_helper_modules_in_codecs_register_nothing():
    for path in CODECS.glob("_*.py"):
        if path.stem == "__init__":
            continue
        assert not [m for m in _imported_modules(path) if "registry" in m], path


def test_the_custom_codec_example_uses_public_names_only():
    imported = _imported_modules(ROOT / "examples" / "custom_codec.py")
    ours = [m for m in imported if m.startswith("h5forge")]
    assert ours and all(m.split(".")[-1] in nodes.__all__ or m in ("h5forge",
                        "h5forge.store.nodes") for m in ours), ours
