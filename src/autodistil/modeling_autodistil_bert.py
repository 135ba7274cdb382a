"""BERT with an attention width decoupled from the hidden size (the ``fixed_head`` convention).

A stock ``BertModel`` ties the attention width to the hidden size (head size H / A). Students of the
``fixed_head`` convention keep the teacher's head size, so their width is A * head_size. This file
defines ``autodistil_bert``: a BERT whose self-attention projects H -> A * head_size and back, with
every other module and every parameter name unchanged.

The file imports only torch and transformers: export copies it into each fixed_head model folder so
that ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` loads the model without autodistil
installed. Importing ``autodistil`` also registers the classes with the transformers Auto classes.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import (
    BertForSequenceClassification,
    BertModel,
)


class AutoDistilBertConfig(BertConfig):
    model_type = "autodistil_bert"

    def __init__(self, attention_head_size: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.attention_head_size = attention_head_size

    @property
    def attention_width(self) -> int:
        return self.num_attention_heads * self.attention_head_size


@contextmanager
def _one_head(config: AutoDistilBertConfig):
    """Let BERT's constructor pass its "hidden size divisible by heads" check; the attention is resized after."""
    heads = config.num_attention_heads
    config.num_attention_heads = 1
    try:
        yield config
    finally:
        config.num_attention_heads = heads


def _resize_attention(bert: BertModel, config: AutoDistilBertConfig) -> None:
    H, W, d = config.hidden_size, config.attention_width, config.attention_head_size
    for layer in bert.encoder.layer:
        sa = layer.attention.self
        sa.num_attention_heads = config.num_attention_heads
        sa.attention_head_size = d
        sa.all_head_size = W
        sa.scaling = d**-0.5
        sa.query, sa.key, sa.value = nn.Linear(H, W), nn.Linear(H, W), nn.Linear(H, W)
        layer.attention.output.dense = nn.Linear(W, H)


class AutoDistilBertModel(BertModel):
    config_class = AutoDistilBertConfig

    def __init__(self, config: AutoDistilBertConfig, add_pooling_layer: bool = True):
        with _one_head(config):
            super().__init__(config, add_pooling_layer=add_pooling_layer)
        _resize_attention(self, config)
        self.post_init()  # initialise the resized projections like every other BERT weight


class AutoDistilBertForSequenceClassification(BertForSequenceClassification):
    config_class = AutoDistilBertConfig

    def __init__(self, config: AutoDistilBertConfig):
        with _one_head(config):
            super().__init__(config)
        _resize_attention(self.bert, config)
        self.post_init()


def register_auto_classes() -> None:
    """Make ``AutoConfig``/``AutoModel``/``AutoModelForSequenceClassification`` know ``autodistil_bert``."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    AutoConfig.register(AutoDistilBertConfig.model_type, AutoDistilBertConfig, exist_ok=True)
    AutoModel.register(AutoDistilBertConfig, AutoDistilBertModel, exist_ok=True)
    AutoModelForSequenceClassification.register(
        AutoDistilBertConfig, AutoDistilBertForSequenceClassification, exist_ok=True
    )


if __name__ == "autodistil.modeling_autodistil_bert":  # not as the remote-code copy in an exported folder
    register_auto_classes()  # importing this module is what lets AutoModel load fixed_head students
