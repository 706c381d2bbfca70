"""The package layout: modules that moved still import from their old paths
(with a DeprecationWarning), and the layers import only downwards."""
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spacy_llm_ner"

# (old module, new module, names the old one must still give, the same objects)
MOVED = [
    ("spacy_llm_ner.kb.weak", "spacy_llm_ner.training.weak", ["WeakLabeler", "LABELS_KEY", "OPEN_SPAN_KEYS"]),
    ("spacy_llm_ner.training.corpora", "spacy_llm_ner.corpora", ["convert", "read_jsonl", "ConvertStats"]),
    ("spacy_llm_ner.tags", "spacy_llm_ner.ml.tags", ["TagSet", "SCHEMES"]),
    ("spacy_llm_ner.display", "spacy_llm_ner.pipeline.display", ["render_links", "link_data"]),
]
# Library code that left a module which stays (no warning): old imports work.
RE_EXPORTED = [
    ("spacy_llm_ner.kb.weak", "spacy_llm_ner.training.weak_io", ["read_raw_docs", "records_from_docs"]),
    ("spacy_llm_ner.cli.quantize", "spacy_llm_ner.ml.rewrite", ["V3", "quantize_pipeline", "size_on_disk"]),
    ("spacy_llm_ner.cli.lora", "spacy_llm_ner.ml.rewrite", ["merge_lora_pipeline"]),
    ("spacy_llm_ner.ml.transformer", "spacy_llm_ner.ml.hf_class", ["TransformedModelClass"]),
]
# Layer -> the imports it must not have (module prefixes).
FORBIDDEN = {
    "ml": ["spacy_llm_ner.pipeline", "spacy_llm_ner.annotate"],
    "kb": ["torch", "spacy_transformers", "spacy_llm_ner.ml", "spacy_llm_ner.pipeline", "spacy_llm_ner.training",
           "spacy_llm_ner.annotate"],
    "corpora": ["spacy_llm_ner.ml", "spacy_llm_ner.pipeline", "spacy_llm_ner.annotate"],
    "training": ["spacy_llm_ner.pipeline", "spacy_llm_ner.annotate"],
    "pipeline": ["spacy_llm_ner.annotate"],
}


def _run(script: str) -> str:
    # A fresh process: a module imported before would not warn again.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("old,new,names", MOVED, ids=[m[0] for m in MOVED])
def test_old_path_warns_and_gives_the_same_objects(old, new, names):
    script = f"""
import importlib, json, sys, warnings
import spacy_llm_ner, spacy_llm_ner.cli
# Nothing in the package may still import the old path.
assert {old!r} not in sys.modules, "imported by the package"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    old = importlib.import_module({old!r})
new = importlib.import_module({new!r})
same = [getattr(old, name) is getattr(new, name) for name in {names!r}]
print(json.dumps({{"same": same, "warnings": [str(w.message) for w in caught if w.category is DeprecationWarning]}}))
"""
    out = json.loads(_run(script))
    assert all(out["same"])
    assert f"{old} moved to {new}" in out["warnings"]


def test_library_code_is_re_exported_where_it_was():
    checks = [(old, new, name) for old, new, names in RE_EXPORTED for name in names]
    script = f"""
import importlib, warnings
warnings.simplefilter("ignore", DeprecationWarning)
for old, new, name in {checks!r}:
    assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name), (old, name)
print("ok")
"""
    assert _run(script).strip() == "ok"


def _imports(path: Path) -> Iterator[str]:
    """Every module a file imports, anywhere in it, relative imports resolved."""
    # A module's package, or an __init__'s own: both are all but the last part.
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base: List[str] = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer):
    found = [
        (str(path.relative_to(PACKAGE)), name)
        for path in sorted((PACKAGE / layer).glob("*.py"))
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert not found
