from .transformer_ner import TransformerNER, make_transformer_ner
from .entity_linker import TransformerEntityLinker, make_entity_linker
from .link_scoring import make_entity_linker_scorer, score_links

__all__ = [
    "TransformerNER", "make_transformer_ner", "TransformerEntityLinker", "make_entity_linker",
    "make_entity_linker_scorer", "score_links",
]
