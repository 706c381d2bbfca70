from pathlib import Path
from typing import List, Tuple

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="run slow tests (real model and data)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tests: tiny models are faster so
    (and the machine is shared). Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TRAIN_DATA: List[Tuple[str, List[Tuple[int, int, str]]]] = [
    ("Aspirin causes headache in mice.", [(0, 7, "CHEM"), (15, 23, "DIS")]),
    ("We gave cisplatin to patients with renal failure.", [(8, 17, "CHEM"), (35, 48, "DIS")]),
    ("No effect of caffeine was seen.", [(13, 21, "CHEM")]),
    ("Chronic kidney disease worsened after lithium therapy.", [(0, 22, "DIS"), (38, 45, "CHEM")]),
]


def save_tiny_bert(folder: Path, *, layers: int = 2, heads: int = 2) -> str:
    """Save a randomly initialised BERT (hidden size 32) with a small
    word-piece vocabulary covering TRAIN_DATA as a Hugging Face folder
    (nothing is downloaded). Seeded: the same weights every session."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = set()
    for text, _ in TRAIN_DATA:
        words.update(text.lower().replace(".", " . ").split())
    chars = set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?()-'\"")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words) + sorted(chars)
    vocab += ["##" + c for c in sorted(chars)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    # Seeded so that every session trains from the same random weights.
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    """A randomly initialised 2-layer BERT with a small word-piece vocabulary,
    saved as a Hugging Face folder (nothing is downloaded)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))
