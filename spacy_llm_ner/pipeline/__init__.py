from .transformer_ner import TransformerNER, make_transformer_ner

__all__ = ["TransformerNER", "make_transformer_ner"]
