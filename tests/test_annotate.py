"""`annotate` against `nlp.pipe`: the same entities, scores and links doc for
doc, on every engine; nothing lost or repeated when a worker dies or a job is
resumed; bad docs and bad inputs reported."""
import json
import os
import signal
from pathlib import Path

import pytest
import spacy
import util
from conftest import TRAIN_DATA
from spacy.tokens import DocBin
from thinc.api import fix_random_seed
from typer.testing import CliRunner

from spacy_llm_ner.annotate import AnnotateError, annotate
from spacy_llm_ner.cli import app
from spacy_llm_ner.kb import EntityRecord, LinkerKB

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SENTENCES = [text for text, _ in TRAIN_DATA] + ["Aspirin and caffeine were given.", "Lithium caused renal failure."]
RECORDS = [
    EntityRecord("C1", "Aspirin", description="a drug"),
    EntityRecord("C2", "cisplatin"),
    EntityRecord("C3", "caffeine"),
    EntityRecord("D1", "headache"),
    EntityRecord("D2", "renal failure"),
]
# A line of the .txt shard that is not UTF-8, one too long, one empty.
BAD_LINES = [b"\xff\xfe not utf8", b"Aspirin " * 300, b""]
MAX_CHARS = 1000


@pytest.fixture(scope="module")
def model_dir(tiny_bert_dir, tmp_path_factory) -> str:
    """The tiny BERT + transformer_ner + transformer_entity_linker, a few
    steps trained (so that there are entities and links), saved."""
    fix_random_seed(0)
    nlp = util.make_nlp("transformer", model_dir=tiny_bert_dir)
    nlp.add_pipe("transformer_entity_linker")
    nlp.get_pipe("transformer_entity_linker").set_kb(LinkerKB.from_records(nlp.vocab, RECORDS))
    util.train(nlp, TRAIN_DATA, steps=80, learn_rate=0.005)
    path = tmp_path_factory.mktemp("annotate_model") / "model"
    nlp.to_disk(path)
    return str(path)


@pytest.fixture(scope="module")
def nlp(model_dir):
    return spacy.load(model_dir)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three shards, one of each kind: 40 good docs and 5 bad ones."""
    folder = tmp_path_factory.mktemp("corpus")
    texts = [" ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(1 + i % 3)) for i in range(40)]
    lines = [t.encode("utf8") for t in texts[:15]] + BAD_LINES
    (folder / "a.txt").write_bytes(b"\n".join(lines) + b"\n")
    with (folder / "b.jsonl").open("w", encoding="utf8") as file:
        for i, text in enumerate(texts[15:30]):
            fields = {"id": f"pmid{i}", "text": text, "year": 2000 + i, "tags": ["x", i]} if i % 2 else {"text": text}
            file.write(json.dumps(fields) + "\n")
        file.write("{not json\n")
    table = pa.table({
        "id": [f"row{i}" for i in range(10)], "text": texts[30:], "journal": [f"J{i % 3}" for i in range(10)],
    })
    (folder / "sub").mkdir()
    # Small row groups: parts start and end inside them.
    pq.write_table(table, folder / "sub" / "c.parquet", row_group_size=3)
    return folder


def expected_inputs(corpus: Path):
    """(id, text, metadata) of each good input doc, read independently of annotate."""
    out = []
    lines = (corpus / "a.txt").read_bytes().split(b"\n")[:-1]
    out += [(f"a.txt:{i + 1}", line.decode("utf8"), {}) for i, line in enumerate(lines[:15])]
    for i, line in enumerate((corpus / "b.jsonl").read_text(encoding="utf8").splitlines()[:15]):
        fields = json.loads(line)
        doc_id = fields.pop("id", f"b.jsonl:{i + 1}")
        out.append((doc_id, fields.pop("text"), fields))
    for row in pq.read_table(corpus / "sub" / "c.parquet").to_pylist():
        out.append((row.pop("id"), row.pop("text"), row))
    return out


BAD_IDS = {"a.txt:16": "undecodable", "a.txt:17": "too long", "a.txt:18": "empty", "b.jsonl:16": "invalid JSON"}


def read_rows(output: Path):
    tables = [pq.read_table(p) for p in sorted((output / "parts").glob("*.parquet"))]
    return {row["id"]: row for table in tables for row in table.to_pylist()}


def check_against_pipe(nlp, corpus: Path, output: Path) -> None:
    """Every good doc's row holds what nlp.pipe gives; bad docs are errors."""
    inputs = expected_inputs(corpus)
    rows = read_rows(output)
    assert len(rows) == len(inputs)
    for (doc_id, text, meta), doc in zip(inputs, nlp.pipe([t for _, t, _ in inputs])):
        row = rows[doc_id]
        assert json.loads(row["meta"]) == meta
        assert [(e["start"], e["end"], e["label"], e["kb_id"]) for e in row["entities"]] == [
            (e.start_char, e.end_char, e.label_, e.kb_id_) for e in doc.ents
        ], doc_id
        assert [e["score"] for e in row["entities"]] == pytest.approx([e._.ner_confidence for e in doc.ents], abs=1e-4)
        assert [e["link_score"] for e in row["entities"]] == pytest.approx([e._.kb_score for e in doc.ents], abs=1e-4)
    errors = [json.loads(line) for line in (output / "errors.jsonl").read_text(encoding="utf8").splitlines()]
    assert {e["id"] for e in errors} == set(BAD_IDS)
    for error in errors:
        assert BAD_IDS[error["id"]] in error["reason"]


def test_entities_exist(nlp, corpus):
    # Otherwise the comparisons below would compare nothing.
    docs = list(nlp.pipe(t for _, t, _ in expected_inputs(corpus)))
    assert sum(len(d.ents) for d in docs) > 20
    assert any(e.kb_id_ not in ("", "NIL") for d in docs for e in d.ents)


@pytest.mark.parametrize("workers", [1, 2])
def test_local_engine_equals_pipe(nlp, model_dir, corpus, tmp_path, workers):
    summary = annotate(model_dir, str(corpus), tmp_path / "out", workers=workers, part_size=7,
                       options={"max_chars": MAX_CHARS})
    assert summary.verified and summary.errors == len(BAD_IDS)
    assert summary.docs == 40 and summary.parts_run == summary.parts
    check_against_pipe(nlp, corpus, tmp_path / "out")


def test_candidates_and_docbin(nlp, model_dir, corpus, tmp_path):
    annotate(model_dir, str(corpus / "b.jsonl"), tmp_path / "out", part_size=50,
             options={"top_candidates": 2, "docbin": True})
    rows = read_rows(tmp_path / "out")
    docs = list(DocBin().from_disk(next((tmp_path / "out" / "docbin").glob("*.spacy"))).get_docs(nlp.vocab))
    assert len(docs) == len(rows) == 15
    for doc, row in zip(docs, rows.values()):
        assert [e.kb_id_ for e in doc.ents] == [e["kb_id"] for e in row["entities"]]
        for ent, out in zip(doc.ents, row["entities"]):
            assert [c["kb_id"] for c in out["candidates"]] == [c for c, _ in ent._.kb_candidates[:2]]


def test_resume_skips_finished_parts(nlp, model_dir, corpus, tmp_path):
    out = tmp_path / "out"
    first = annotate(model_dir, str(corpus), out, part_size=7, options={"max_chars": MAX_CHARS}, stop_after=2)
    assert not first.verified and first.parts_run == 2
    done = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("*.parquet")}
    assert len(done) == 2
    with pytest.raises(AnnotateError, match="--resume"):
        annotate(model_dir, str(corpus), out, part_size=7)
    second = annotate(model_dir, str(corpus), out, part_size=7, options={"max_chars": MAX_CHARS}, resume=True)
    assert second.verified and second.parts_run == second.parts - 2 and second.docs == 40
    assert {n: (out / "parts" / n).stat().st_mtime_ns for n in done} == done
    keys = [json.loads(line)["key"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == second.parts
    check_against_pipe(nlp, corpus, out)


def test_glob_and_folder_give_the_same_ids(corpus):
    from spacy_llm_ner.annotate.inputs import find_shards

    assert [s.name for s in find_shards(str(corpus))] == ["a.txt", "b.jsonl", "sub/c.parquet"]
    assert [s.name for s in find_shards(str(corpus / "**" / "*.*"))] == ["a.txt", "b.jsonl", "sub/c.parquet"]
    assert [(s.name, s.n_records) for s in find_shards(str(corpus / "a.txt"))] == [("a.txt", 18)]


def test_bad_input_and_model_fail_before_work(model_dir, corpus, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.txt").write_text("Aspirin.\n")
    (tmp_path / "in" / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(AnnotateError, match="broken.parquet"):
        annotate(model_dir, str(tmp_path / "in"), tmp_path / "out")
    with pytest.raises(AnnotateError, match="Model not found: .*nowhere"):
        annotate(str(tmp_path / "nowhere"), str(corpus), tmp_path / "out")
    with pytest.raises(AnnotateError, match="Unknown engine 'spark'"):
        annotate(model_dir, str(corpus), tmp_path / "out", engine="spark")
    with pytest.raises(AnnotateError, match="No input found"):
        annotate(model_dir, str(tmp_path / "none*.txt"), tmp_path / "out")
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "in" / "broken.parquet")
    with pytest.raises(AnnotateError, match="broken.parquet: has no 'text' column"):
        annotate(model_dir, str(tmp_path / "in"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_pipeline_error_goes_to_errors(model_dir, corpus, tmp_path, monkeypatch, workers):
    """A doc the pipeline fails on is an error with its reason; its batch
    mates are still annotated (with n_process=2 the forked children fail the
    batch, the parent redoes its docs one at a time)."""
    from spacy_llm_ner.pipeline.transformer_ner import TransformerNER

    predict = TransformerNER.predict

    def failing(self, docs):
        if any("lithium" in d.text.lower() for d in docs):
            raise RuntimeError("boom")
        return predict(self, docs)

    monkeypatch.setattr(TransformerNER, "predict", failing)
    summary = annotate(model_dir, str(corpus / "b.jsonl"), tmp_path / "out", part_size=50, workers=workers)
    errors = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    texts = {i: t for i, t, _ in expected_inputs(corpus)}
    failed = {i for i, t in texts.items() if i.startswith(("b.jsonl", "pmid")) and "lithium" in t.lower()}
    assert failed and {e["id"] for e in errors} == failed | {"b.jsonl:16"}
    assert all("RuntimeError: boom" in e["reason"] for e in errors if e["id"] in failed)
    assert summary.verified and summary.docs == 15 - len(failed)


def test_cli(model_dir, corpus, tmp_path):
    result = CliRunner().invoke(app, ["annotate", model_dir, str(corpus / "a.txt"), str(tmp_path / "out"),
                                      "--max-chars", str(MAX_CHARS), "--part-size", "5"])
    assert result.exit_code == 0, result.output
    assert "Verified: every input doc" in result.output and "errors" in result.output
    result = CliRunner().invoke(app, ["annotate", model_dir, str(tmp_path / "missing.txt"), str(tmp_path / "o2")])
    assert result.exit_code == 1 and "missing.txt" in result.output


@pytest.fixture(scope="module")
def dask_cluster(model_dir):
    """A Dask scheduler with two worker processes on localhost: the user's
    existing cluster, joined with --address."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield cluster
    cluster.close()


def test_dask_cluster_equals_pipe(nlp, model_dir, corpus, tmp_path, dask_cluster):
    summary = annotate(model_dir, str(corpus), tmp_path / "out", engine="dask", address=dask_cluster.scheduler_address,
                       part_size=5, options={"max_chars": MAX_CHARS})
    assert summary.verified and summary.docs == 40
    check_against_pipe(nlp, corpus, tmp_path / "out")
    workers = {json.loads(x)["worker"] for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()}
    assert len(workers) == 2  # both workers did parts


def test_dask_local_cluster_equals_pipe(nlp, model_dir, corpus, tmp_path):
    """No address: a local cluster whose workers are forked with the pipeline loaded."""
    pytest.importorskip("distributed")
    summary = annotate(model_dir, str(corpus), tmp_path / "out", engine="dask", workers=2, part_size=5,
                       options={"max_chars": MAX_CHARS})
    assert summary.verified and summary.docs == 40
    check_against_pipe(nlp, corpus, tmp_path / "out")


def test_dask_killed_worker(nlp, model_dir, corpus, tmp_path, dask_cluster):
    """SIGKILL a worker while it works: the nanny restarts it, the scheduler
    reruns its part, the output is complete with every id once."""
    distributed = pytest.importorskip("distributed")
    killed = []

    def kill_a_busy_worker(stats):
        # The other worker, while the scheduler says it holds a part (asked
        # through the job's own client: one client, one event loop).
        if killed:
            return
        client = distributed.get_client()
        pids = client.run(os.getpid)
        busy = [a for a, keys in client.processing().items() if keys and not stats.worker.endswith(f":{pids[a]}")]
        if busy:
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(pids[busy[0]])

    summary = annotate(model_dir, str(corpus), tmp_path / "out", engine="dask", address=dask_cluster.scheduler_address,
                       part_size=3, options={"max_chars": MAX_CHARS}, on_part=kill_a_busy_worker)
    assert killed and summary.verified and summary.docs == 40
    check_against_pipe(nlp, corpus, tmp_path / "out")


@pytest.mark.slow
def test_ray_two_node_cluster_equals_pipe(nlp, model_dir, corpus, tmp_path):
    """Ray Data on a simulated two-node Ray cluster (cluster_utils.Cluster)."""
    pytest.importorskip("ray.data")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        summary = annotate(model_dir, str(corpus), tmp_path / "out", engine="ray", address=cluster.address,
                           workers=2, part_size=5, options={"max_chars": MAX_CHARS})
        assert summary.verified and summary.docs == 40
        check_against_pipe(nlp, corpus, tmp_path / "out")
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_ray_killed_actor(nlp, model_dir, corpus, tmp_path):
    """SIGKILL a Ray Data actor while it works: Ray restarts it and retries
    its part; the output is complete with every id once."""
    pytest.importorskip("ray.data")
    psutil = pytest.importorskip("psutil")
    killed = []

    def kill_the_other_actor(stats):
        if killed:
            return
        pid = int(stats.worker.rsplit(":", 1)[1])
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if proc.info["pid"] != pid and "MapWorker" in " ".join(proc.info["cmdline"] or []):
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return

    summary = annotate(model_dir, str(corpus), tmp_path / "out", engine="ray", workers=2, part_size=3,
                       options={"max_chars": MAX_CHARS}, on_part=kill_the_other_actor)
    assert killed and summary.verified and summary.docs == 40
    check_against_pipe(nlp, corpus, tmp_path / "out")
