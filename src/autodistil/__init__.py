"""AutoDistil: few-shot, task-agnostic neural architecture search for distilling BERT-like models.

Importing the package imports nothing heavy (each stage imports torch and transformers only where its path needs
them). ``fixed_head`` students load with ``trust_remote_code=True``, or after
``import autodistil.modeling_autodistil_bert``, which registers their classes with transformers' Auto classes.
"""

__version__ = "0.1.0"
