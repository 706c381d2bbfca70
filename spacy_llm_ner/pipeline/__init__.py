from .transformer_ner import TransformerNER, make_transformer_ner
from .entity_linker import TransformerEntityLinker, make_entity_linker

__all__ = ["TransformerNER", "make_transformer_ner", "TransformerEntityLinker", "make_entity_linker"]
