"""Every public name resolves through setup.cfg entry points in a fresh
process, without importing the package first."""
import configparser
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _entry_points():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    section = cfg["options.entry_points"]
    out = {}
    for group in section:
        if not group.startswith("spacy_"):
            continue
        names = [line.split("=")[0].strip() for line in section[group].strip().splitlines() if line.strip()]
        out[group[len("spacy_"):]] = names
    return out


def test_entry_points_resolve_in_fresh_process():
    groups = _entry_points()
    assert "transformer_ner" in groups["factories"]
    script = f"""
import sys, json, spacy
from spacy.util import registry
groups = json.loads({json.dumps(json.dumps(groups))})
assert "spacy_llm_ner" not in sys.modules
for name in groups.pop("factories"):
    nlp = spacy.blank("en")
    nlp.add_pipe(name)  # found through the entry point, not an import
    assert name in nlp.pipe_names
for reg, names in groups.items():
    for name in names:
        getattr(registry, reg).get(name)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_registered_name_is_an_entry_point():
    script = """
import json, spacy_llm_ner
from spacy.util import registry
found = {}
for reg in ("architectures", "misc", "readers", "augmenters", "scorers", "layers", "callbacks", "span_getters"):
    names = [n for n in getattr(registry, reg).get_all() if n.startswith("spacy_llm_ner.")]
    if names:
        found[reg] = sorted(names)
print(json.dumps(found))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    registered = json.loads(result.stdout)
    declared = _entry_points()
    for reg, names in registered.items():
        assert set(names) <= set(declared.get(reg, [])), (reg, set(names) - set(declared.get(reg, [])))


def test_factory_names_do_not_clash_with_spacy():
    for name in _entry_points()["factories"]:
        assert name not in {"ner", "entity_linker", "llm_ner", "llm_entitylinker", "llm", "spancat"}
