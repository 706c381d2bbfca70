"""BC5CDR distillation: CPU-light students of the trained MiniLM teacher
(configs/ner.cfg as trained by benchmarks/ner_ablation.py, `ours_crf_lexical`),
beside the same student trained on
gold alone and spaCy's stock CNN `ner`, all with configs/ner_cnn.cfg's
Tok2Vec, optimizer and step budget, in one run.

Needs ner_ablation.py's trained `ours_crf_lexical` run (the teacher) and the
converted BC5CDR splits in benchmarks/work/bc5cdr; <data>/kb/CTD_diseases.tsv.gz
(definitions as raw text, Disease names for the entity swaps).

    python benchmarks/distill_bc5cdr.py all
    python benchmarks/distill_bc5cdr.py corpus --swap-copies 2    # for cnn_distilled_swap
    python benchmarks/distill_bc5cdr.py train --only cnn_distilled_6k

Stages: corpus (the teacher labels the training text and, unless
--no-definitions, CTD's disease definitions as raw text with its per-token tag
distributions: `python -m spacy_llm_ner distill-corpus`), train (`all`:
cnn_distilled, cnn_gold, stock_cnn; the other students with --only). Each
student's test scores are measured by `benchmarks/frontier.py`, which puts
the students beside the fp32 and int8 teachers (F1 against words/second).
"""
import copy
import json
import sys
from pathlib import Path
from typing import Annotated, Dict, List, Optional

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (stock `ner` settings, subprocess runner)
from bc5cdr_ner import run  # noqa: E402
from common import BC5CDR_WORK, DATA, ROOT, typer_app  # noqa: E402

WORK = BC5CDR_WORK
TEACHER = WORK / "ours_crf_lexical" / "model-best"
STEPS_DEFAULT = 3000
# spaCy's stock `ner` as in bc5cdr_ner.py, on the CNN Tok2Vec (with the
# upper layer, spaCy's default for a CNN).
STOCK_NER = copy.deepcopy(bc5cdr_ner.STOCK_NER)
STOCK_NER["model"]["use_upper"] = True
STOCK_NER["model"]["tok2vec"] = {
    "@architectures": "spacy.Tok2VecListener.v1", "width": "${vars.width}", "upstream": "tok2vec",
}
# name -> training corpus; optional: stock ner, encoder depth, own step budget.
STUDENTS: Dict[str, Dict] = {
    "cnn_distilled": {"train": "distill_train.spacy"},
    "cnn_gold": {"train": "train.spacy"},
    "stock_cnn": {"train": "train.spacy", "stock": True},
    # The distilled student was still improving on dev at 3,000 steps (4
    # epochs of the larger corpus); a depth-2 encoder halves its gemm.
    "cnn_distilled_6k": {"train": "distill_train.spacy", "steps": 6000},
    "cnn_distilled_depth2_6k": {"train": "distill_train.spacy", "steps": 6000, "depth": 2},
    # Also the teacher on entity-swapped copies of the training abstracts
    # (`corpus --swap-copies 2`): new names in real contexts.
    "cnn_distilled_swap": {"train": "distill_train_swap.spacy", "steps": 6000},
    # The weight of the KL term against the gold loss (selected on dev).
    "cnn_distilled_kl2": {"train": "distill_train.spacy", "distill_weight": 2.0},
    "cnn_distilled_kl05": {"train": "distill_train.spacy", "distill_weight": 0.5},
}
# The students `all` trains (the variants are trained with --only).
DEFAULT_STUDENTS = ("cnn_distilled", "cnn_gold", "stock_cnn")

app = typer_app(__doc__)


def ctd_definitions() -> Path:
    """CTD's disease definitions (MeSH scope notes, 4,685 texts, 163k
    words), one per line: in-domain raw text for the teacher to label. No
    BC5CDR text beyond train is used, so test stays unseen."""
    from spacy_llm_ner.kb.loaders import read_records

    path = WORK / "ctd_definitions.txt"
    if not path.exists():
        DATA.need(DATA.ctd)
        texts = (" ".join(r.description.split()) for r in read_records(DATA.ctd, strip_prefix="MESH:"))
        path.write_text("".join(t + "\n" for t in texts if len(t.split()) >= 5), encoding="utf8")
    return path


def swap_text(copies: int, *, seed: int = 0) -> Path:
    """`copies` entity-swapped versions of each training abstract, one per
    line: every gold mention replaced by another name of its type (Disease:
    a CTD name, Chemical: another chemical of the training data), by the
    project's `entity_swap_augmenter`. Raw text for the teacher to label:
    the swaps' own labels are not used."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example

    from spacy_llm_ner.kb.loaders import make_ctd_kb_loader
    from spacy_llm_ner.training.augment import create_entity_swap_augmenter

    path = WORK / f"swap_train_{copies}.txt"
    if path.exists():
        return path
    DATA.need(DATA.ctd)
    nlp = spacy.blank("en")
    gold = list(DocBin().from_disk(WORK / "train.spacy").get_docs(nlp.vocab))
    names = {label: sorted({e.text for d in gold for e in d.ents if e.label_ == label}) for label in ("Chemical",)}
    augment = create_entity_swap_augmenter(
        level=1.0, kb_loader=make_ctd_kb_loader(path=str(DATA.ctd)), names=names, seed=seed, keep_original=False,
    )
    lines = [
        " ".join(eg.reference.text.split())
        for _ in range(copies) for doc in gold for eg in augment(nlp, Example(nlp.make_doc(doc.text), doc))
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf8")
    return path


@app.command()
def corpus(
    unlabelled: Annotated[Optional[List[Path]], typer.Option("--text", help="Extra raw text for the teacher")] = None,
    definitions: Annotated[bool, typer.Option(help="Add CTD's disease definitions as raw text")] = True,
    swap_copies: Annotated[int, typer.Option(help="Add N entity-swapped copies of each training abstract")] = 0,
) -> None:
    """The teacher's distributions on the training docs (gold kept) and on
    any extra raw text."""
    texts = [*(unlabelled or []), *([ctd_definitions()] if definitions else [])]
    texts += [swap_text(swap_copies)] if swap_copies else []
    extra = [arg for path in texts for arg in ("--text", str(path))]
    suffix = "_swap" if swap_copies else ""
    seconds = run(
        [sys.executable, "-m", "spacy_llm_ner", "distill-corpus", str(TEACHER),
         str(WORK / f"distill_train{suffix}.spacy"), "--docs", str(WORK / "train.spacy"), *extra],
        WORK / f"distill_corpus{suffix}.log",
    )
    (WORK / f"distill_corpus{suffix}_seconds.json").write_text(json.dumps({"seconds": seconds}))


def write_config(name: str) -> Path:
    from spacy import util

    config = util.load_config(ROOT / "configs" / "ner_cnn.cfg", interpolate=False)
    if STUDENTS[name].get("stock"):
        del config["components"]["transformer_ner"]
        config["components"]["ner"] = STOCK_NER
        config["nlp"]["pipeline"] = ["tok2vec", "ner"]
    if "depth" in STUDENTS[name]:
        config["components"]["tok2vec"]["model"]["encode"]["depth"] = STUDENTS[name]["depth"]
    if "distill_weight" in STUDENTS[name]:
        config["components"]["transformer_ner"]["distill_weight"] = STUDENTS[name]["distill_weight"]
    path = WORK / f"{name}.cfg"
    config.to_disk(path)
    return path


@app.command()
def train(steps: int = STEPS_DEFAULT, eval_frequency: int = 500, only: str = "") -> None:
    """Each student: configs/ner_cnn.cfg, same steps (unless a variant
    names its own), selected on dev."""
    for name in [only] if only else DEFAULT_STUDENTS:
        settings = STUDENTS[name]
        n_steps = settings.get("steps", steps)
        out = WORK / name
        seconds = run(
            [sys.executable, "-m", "spacy", "train", str(write_config(name)), "-o", str(out),
             "--paths.train", str(WORK / settings["train"]), "--paths.dev", str(WORK / "dev.spacy"),
             "--training.max_steps", str(n_steps), "--training.eval_frequency", str(eval_frequency)],
            WORK / f"train_{name}.log",
        )
        (out / "train_seconds.json").write_text(json.dumps({"seconds": seconds, "steps": n_steps}))


@app.command("all")
def run_all(steps: int = STEPS_DEFAULT) -> None:
    """corpus (with the definitions), then train the default students."""
    corpus()
    train(steps=steps)


if __name__ == "__main__":
    app()
