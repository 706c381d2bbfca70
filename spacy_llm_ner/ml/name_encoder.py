"""A name encoder: a Hugging Face backbone whose mean-pooled output embeds a
short string (an entity name or a mention), and the contrastive loss that
aligns it on a knowledge base's own synonyms (SapBERT's recipe).

The encoder is a plain HF model and tokenizer, so an aligned one is saved as
an ordinary HF folder: usable as a pipeline's `transformer_name` or for
nearest-name search on its own.
"""
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

import numpy
import torch

from .transformer import resolve_model_name


class NameEncoder:
    """Mean-pooled, L2-normalised embeddings of short strings.

    name (str): Model name, local folder or installed model package (as a
        config's `transformer_name`).
    max_length (int): Word pieces per string (names are short; SapBERT uses 25).
    """

    def __init__(self, name: str, *, max_length: int = 25) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_model_name(name)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path)
        self.max_length = max_length

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings with gradients (training).

        texts (Sequence[str]): The strings.
        RETURNS (torch.Tensor): (len(texts), width), unit length.
        """
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        hidden = self.model(**batch).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)

    def encode(self, texts: Sequence[str], *, batch_size: int = 256) -> numpy.ndarray:
        """Embeddings for search, in predict mode, batches sorted by length
        so that little of the work is padding.

        texts (Sequence[str]): The strings.
        batch_size (int): Strings per forward pass.
        RETURNS (numpy.ndarray): (len(texts), width) float32, unit length.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: Optional[numpy.ndarray] = None
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                vectors = self.forward([texts[i] for i in rows]).numpy()
                if out is None:
                    out = numpy.zeros((len(texts), vectors.shape[1]), dtype="float32")
                out[rows] = vectors
        self.model.train(was_training)
        return out if out is not None else numpy.zeros((0, self.model.config.hidden_size), dtype="float32")

    def save(self, path: Union[str, Path]) -> None:
        """Save as an HF folder (model and tokenizer).

        path (Union[str, Path]): The folder.
        """
        self.model.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the word-piece vectors that are not padding.

    hidden (torch.Tensor): (batch, length, width).
    mask (torch.Tensor): (batch, length) attention mask.
    RETURNS (torch.Tensor): (batch, width).
    """
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def synonym_contrastive_loss(
    embeddings: torch.Tensor, entity: torch.Tensor, *, temperature: float = 0.05
) -> torch.Tensor:
    """Supervised InfoNCE over a batch of names: for each name, every other
    name of the same entity is a positive and every name of another entity a
    negative (in-batch negatives; batches built with hard negatives make
    them count).

    embeddings (torch.Tensor): (n, width), unit length.
    entity (torch.Tensor): (n,) entity index of each name.
    temperature (float): Softmax temperature of the cosine similarities.
    RETURNS (torch.Tensor): The mean loss over names that have a positive.
    """
    n = embeddings.shape[0]
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positive = (entity.unsqueeze(0) == entity.unsqueeze(1)) & ~self_mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has_positive = positive.any(1)
    if not has_positive.any():
        return embeddings.sum() * 0.0
    # Mean log-probability of a row's positives (supervised contrastive loss).
    pos_log_prob = log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1)
    return -pos_log_prob[has_positive].mean()


def nearest(queries: numpy.ndarray, keys: numpy.ndarray, *, k: int = 10, batch_size: int = 1024) -> Any:
    """Indices of the k most similar keys of each query (cosine on unit
    vectors), best first.

    queries (numpy.ndarray): (q, width).
    keys (numpy.ndarray): (n, width).
    k (int): How many.
    batch_size (int): Queries per matrix product.
    RETURNS (numpy.ndarray): (q, min(k, n)) int64.
    """
    k = min(k, len(keys))
    out: List[numpy.ndarray] = []
    for start in range(0, len(queries), batch_size):
        scores = queries[start : start + batch_size] @ keys.T
        top = numpy.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = numpy.argsort(-numpy.take_along_axis(scores, top, axis=1), axis=1)
        out.append(numpy.take_along_axis(top, order, axis=1))
    return numpy.concatenate(out) if out else numpy.zeros((0, k), dtype=numpy.int64)
