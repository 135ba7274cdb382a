"""AutoDistil: few-shot, task-agnostic neural architecture search for distilling BERT-like models."""

__version__ = "0.1.0"
