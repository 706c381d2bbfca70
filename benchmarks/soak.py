"""Soak benchmark (not a test): annotate ~1M words of mixed real and hostile
text with a full pipeline (transformer + transformer_ner +
transformer_entity_linker), reporting words/second and RSS after every
chunk. Flat RSS over the run = no leak; steady words/s = no slowdown.

Needs a trained pipeline (bc5cdr_el.py's `ours_el` was used) and BC5CDR
(<data>/bc5cdr, converted to benchmarks/work/bc5cdr if not yet). A single
command: the model is the first argument.

    python benchmarks/soak.py benchmarks/work/bc5cdr/ours_el/model-best --words 1000000

Real text: BC5CDR abstracts (train, dev, test). Hostile text, one doc in
every ten: empty and whitespace-only docs, a 5,000-character token, emoji,
CJK, RTL and combining characters, control characters, a long document
(~100k tokens, one in every 500), repeated entity names. Writes
benchmarks/results/soak.{json,md}.
"""
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List


sys.path.insert(0, str(Path(__file__).resolve().parent))
import bc5cdr_ner  # noqa: E402  (converted splits)
from common import BC5CDR_WORK, DATA, RESULTS, data_option, typer_app  # noqa: E402

WORK = BC5CDR_WORK
HOSTILE = [
    "",
    "   \n\t ",
    "a" * 5000,
    "😀🔥 cisplatin 😀 caused 头痛 and مرض الكلى in 患者 " * 20,
    "e\u0301\u0301\u0301 cisplatin\u200b\u200d renal failure \u202e reversed \u202c " * 20,
    "\x00\x01\x1f control \x7f characters with hypertension\x0b\x0c " * 20,
    "Aspirin " * 2000,
    "hypertension (HTN) and chronic kidney disease (CKD); HTN, CKD. " * 50,
]


def rss_mb() -> float:
    """Current resident set size (Linux /proc), MB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def texts(*, seed: int = 0) -> Iterator[str]:
    """Endless stream: BC5CDR abstracts, shuffled, with a hostile doc (or the
    ~100k-token document) in every ten."""
    import spacy
    from spacy.tokens import DocBin

    bc5cdr_ner.convert()
    vocab = spacy.blank("en").vocab
    real: List[str] = []
    for split in ("train", "dev", "test"):
        real.extend(doc.text for doc in DocBin().from_disk(WORK / f"{split}.spacy").get_docs(vocab))
    rng = random.Random(seed)
    long_doc = " ".join(rng.sample(real, 420))  # ~100k tokens
    i = 0
    while True:
        rng.shuffle(real)
        for text in real:
            i += 1
            if i % 10 == 0:
                yield long_doc if i % 500 == 0 else HOSTILE[(i // 10) % len(HOSTILE)]
            yield text


app = typer_app(data_callback=False)


@app.command()
def run(
    model: Path, words: int = 1_000_000, chunk: int = 100_000, batch_size: int = 64, data: Path = data_option()
) -> None:
    """Annotate `words` words of BC5CDR and hostile text with MODEL in chunks,
    recording words/s and RSS per chunk."""
    import spacy
    import torch

    DATA.set_root(data)
    torch.set_num_threads(2)
    nlp = spacy.load(model)
    rows: List[Dict] = []
    stream = texts()
    done, n_docs, n_ents, n_links = 0, 0, 0, 0
    start = chunk_start = time.perf_counter()
    chunk_words = 0
    for doc in nlp.pipe(stream, batch_size=batch_size):
        n_docs += 1
        done += len(doc)
        chunk_words += len(doc)
        n_ents += len(doc.ents)
        n_links += sum(1 for e in doc.ents if e.kb_id_ and e.kb_id_ != "NIL")
        if chunk_words >= chunk:
            now = time.perf_counter()
            rows.append({"words": done, "words_per_second": chunk_words / (now - chunk_start), "rss_mb": rss_mb(),
                         "seconds": now - start})
            print(rows[-1], flush=True)
            chunk_start, chunk_words = now, 0
        if done >= words:
            break
    result = {
        "model": str(model),
        "words": done,
        "docs": n_docs,
        "entities": n_ents,
        "linked": n_links,
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "chunks": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2))
    lines = ["| words | words/s (chunk) | RSS MB |", "|---|---|---|"]
    lines += [f"| {r['words']:,} | {r['words_per_second']:,.0f} | {r['rss_mb']:,.0f} |" for r in rows]
    lines.append(
        f"\n{done:,} words, {n_docs:,} docs ({n_ents:,} entities, {n_links:,} linked) in {result['seconds']:.0f} s; "
        f"peak RSS {result['peak_rss_mb']:,.0f} MB."
    )
    (RESULTS / "soak.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app()
