"""Command-line interface: ``spacy-llm-ner COMMAND`` or ``python -m spacy_llm_ner COMMAND``."""
import typer

app = typer.Typer(name="spacy-llm-ner", add_completion=False, no_args_is_help=True)


@app.callback()
def main() -> None:
    """spacy-llm-ner: convert data, inspect pipelines, build knowledge bases."""


# Commands register themselves on `app` when their module is imported.
from . import align, annotate, convert, distill, kb, lora, onnx, quantize, show, weak  # noqa: E402,F401

__all__ = ["app"]
