"""KB synonym alignment (align-kb): the contrastive loss, batches with hard
negatives, an encoder that learns a small KB's synonyms, and its HF folder."""
import random

import numpy
import pytest
import torch

from spacy_llm_ner.kb.records import EntityRecord
from spacy_llm_ner.ml.name_encoder import NameEncoder, nearest, synonym_contrastive_loss
from spacy_llm_ner.training.align import AlignSettings, align_encoder, batches, synonym_groups

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Synonyms that share little surface form, and distractors that share a lot.
RECORDS = [
    EntityRecord(id="D1", name="kidney failure", aliases=["renal insufficiency", "nephropathy end stage"]),
    EntityRecord(id="D2", name="kidney stones", aliases=["nephrolithiasis", "renal calculi"]),
    EntityRecord(id="D3", name="heart attack", aliases=["myocardial infarction", "cardiac infarct"]),
    EntityRecord(id="D4", name="heart failure", aliases=["cardiac insufficiency", "cardiac decompensation"]),
    EntityRecord(id="D5", name="high blood pressure", aliases=["hypertension", "arterial hypertension"]),
    EntityRecord(id="D6", name="low blood pressure", aliases=["hypotension", "arterial hypotension"]),
]


@pytest.fixture(scope="module")
def char_bert_dir(tmp_path_factory) -> str:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("char_bert")
    chars = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars) + ["##" + c for c in chars]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


def _synonym_accuracy(encoder: NameEncoder) -> float:
    """Share of names whose nearest other name belongs to the same entity."""
    names = [(n, i) for i, group in enumerate(synonym_groups(RECORDS)) for n in group]
    vectors = encoder.encode([n for n, _ in names])
    top = nearest(vectors, vectors, k=2)
    return float(numpy.mean([names[row[1]][1] == names[i][1] for i, row in enumerate(top)]))


def test_loss_prefers_synonyms_together():
    entity = torch.tensor([0, 0, 1, 1])
    together = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]), dim=-1)
    crossed = together[[0, 2, 1, 3]]
    assert synonym_contrastive_loss(together, entity) < synonym_contrastive_loss(crossed, entity)
    # No name with a positive: zero, and still differentiable.
    single = synonym_contrastive_loss(together[:2], torch.tensor([0, 1]))
    assert float(single) == 0.0


def test_batches_hold_seeds_their_neighbours_and_two_names_each():
    groups = synonym_groups(RECORDS + [EntityRecord(id="S", name="single")])
    neighbours = [[3], [0], [1], [6], [5], [4], []]
    stream = batches(groups, neighbours, settings=AlignSettings(batch_entities=4, neighbours=1), rng=random.Random(0))
    batch = next(stream)
    entities = [e for _, e in batch]
    for e in set(entities):
        assert entities.count(e) == min(2, len(groups[e]))
    seeds = {e for e in set(entities) if e != 6}
    assert any(neighbours[s][0] in entities for s in seeds)
    with pytest.raises(ValueError, match="two distinct names"):
        next(batches([["a"], ["b"]], [[], []], settings=AlignSettings(), rng=random.Random(0)))


def test_alignment_learns_the_synonyms_and_saves_as_an_hf_folder(char_bert_dir, tmp_path):
    encoder = NameEncoder(char_bert_dir)
    before = _synonym_accuracy(encoder)
    losses = []
    settings = AlignSettings(steps=60, batch_entities=6, neighbours=1, learning_rate=3e-3, temperature=0.1)
    align_encoder(encoder, RECORDS, settings=settings, on_step=lambda step, loss: losses.append(loss))
    after = _synonym_accuracy(encoder)
    assert before < 0.7 and after >= 0.9
    assert numpy.mean(losses[-10:]) < numpy.mean(losses[:10])
    encoder.save(tmp_path / "aligned")
    reloaded = NameEncoder(str(tmp_path / "aligned"))
    names = ["hypertension", "renal calculi"]
    numpy.testing.assert_allclose(reloaded.encode(names), encoder.encode(names), atol=1e-5)
