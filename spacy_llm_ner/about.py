__title__ = "spacy-llm-ner"
__version__ = "0.1.0"
