"""What a user sees first: a missing model is one line with the fix, and
commands that need no model start without importing torch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INIT_MISSING = """
import spacy
from spacy.util import load_config
cfg = load_config("configs/ner.cfg", overrides={"vars.transformer_name": "no-such-org/no-such-model"})
nlp = spacy.util.load_model_from_config(cfg, auto_fill=True)
nlp.initialize()
"""


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_missing_model_is_one_line_with_the_fix():
    result = _run(INIT_MISSING)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("spacy_llm_ner.ml.transformer.ModelNotFoundError: Transformer model 'no-such-org/no-such-model'")
    assert "gt_no_such_model" in last and "--vars.transformer_name" in last
    # The hub client's own message (and its chain) is not shown.
    assert "huggingface.co" not in result.stderr and "direct cause" not in result.stderr


def test_a_broken_local_folder_keeps_its_own_message(tmp_path):
    (tmp_path / "config.json").write_text("{not json", encoding="utf8")
    result = _run(INIT_MISSING.replace("no-such-org/no-such-model", str(tmp_path)))
    assert result.returncode != 0 and "ModelNotFoundError" not in result.stderr


# Runs the CLI in a fresh process as `python -m spacy_llm_ner` would, then
# prints which heavy modules that imported: robust where timings are not.
HEAVY = ("torch", "spacy", "transformers", "spacy_transformers", "thinc", "spacy_llm_ner.pipeline")
RUN_CLI = """
import runpy, sys
sys.argv = ["spacy_llm_ner", *{args!r}]
try:
    runpy.run_module("spacy_llm_ner", run_name="__main__")
except SystemExit as exit_:
    assert not exit_.code, exit_.code
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""


def _imported_by(*args: str) -> list:
    result = _run(RUN_CLI.format(args=list(args), heavy=HEAVY))
    assert result.returncode == 0, result.stderr
    return eval(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--help"], ["build-kb", "--help"], ["convert", "--help"], ["quantize", "--help"]])
def test_help_imports_no_spacy_nor_torch(args):
    assert _imported_by(*args) == []


def test_build_kb_imports_no_spacy_nor_torch(tmp_path):
    assert _imported_by("build-kb", "assets/demo_kb.jsonl", str(tmp_path / "kb")) == []
    assert (tmp_path / "kb" / "meta.json").is_file()


def test_convert_builds_no_language(tmp_path):
    # convert needs spaCy (Docs, the tokenizer), not the installed factories.
    imported = _imported_by("convert", "assets/demo_train.jsonl", str(tmp_path / "train.spacy"))
    assert not {"transformers", "spacy_transformers", "spacy_llm_ner.pipeline"} & set(imported)
    assert (tmp_path / "train.spacy").stat().st_size > 0
