"""AutoDistil: few-shot, task-agnostic neural architecture search for distilling BERT-like models."""

from .modeling_autodistil_bert import register_auto_classes

__version__ = "0.1.0"

register_auto_classes()  # fixed_head students load through the transformers Auto classes
