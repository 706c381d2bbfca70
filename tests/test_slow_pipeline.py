"""Slow: the shipped configs with the real offline model, and packaging."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

ROOT = Path(__file__).resolve().parents[1]


def _convert(tmp_path: Path) -> Path:
    for split in ("train", "dev"):
        subprocess.run(
            [sys.executable, "-m", "spacy_llm_ner", "convert", str(ROOT / "assets" / f"demo_{split}.jsonl"),
             str(tmp_path / f"{split}.spacy")],
            check=True, capture_output=True,
        )
    return tmp_path


def _train(config: str, tmp_path: Path, steps: int) -> Path:
    out = tmp_path / config
    subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / f"{config}.cfg"), "-o", str(out),
         "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy"),
         "--training.max_steps", str(steps), "--training.eval_frequency", str(steps)],
        check=True, capture_output=True,
    )
    return out / "model-last"


@pytest.mark.slow
@pytest.mark.parametrize("config,steps", [("ner", 20), ("ner_cnn", 60)])
def test_shipped_config_trains_saves_and_loads(config, steps, tmp_path):
    _convert(tmp_path)
    model = _train(config, tmp_path, steps)
    nlp = spacy.load(model)
    assert nlp.pipe_names[-1] == "transformer_ner"
    if config == "ner":
        assert nlp.config.interpolate()["components"]["transformer"]["model"]["name"] == "all-MiniLM-L6-v2"
    gold = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(nlp.vocab))
    texts = [doc.text for doc in gold[:20]]
    single = [[(e.start_char, e.end_char, e.label_) for e in nlp(t).ents] for t in texts]
    multi = [[(e.start_char, e.end_char, e.label_) for e in d.ents] for d in nlp.pipe(texts, n_process=2)]
    assert multi == single


@pytest.mark.slow
def test_spacy_package_lists_our_package(tmp_path):
    _convert(tmp_path)
    model = _train("ner_cnn", tmp_path, 5)
    out = tmp_path / "packages"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(model), str(out), "--name", "demo", "--version",
         "0.0.1", "--build", "sdist", "--force"],
        check=True, capture_output=True,
    )
    meta = json.loads((out / "en_demo-0.0.1" / "meta.json").read_text())
    assert any(req.startswith("spacy-llm-ner") for req in meta["requirements"])
