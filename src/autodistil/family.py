"""Model families: what differs between the BERT-like encoders autodistil distils, in one place.

BERT, RoBERTa (and XLM-R, CamemBERT, which are RoBERTa with other vocabularies) and ELECTRA share one layer
layout and BERT's parameter names (``embeddings.*``, ``encoder.layer.<i>.attention.self.query`` ...), which is what
lets the importance order, the SuperLM and export work on state dicts by name. They differ in a few places, each a
field here and read where it matters, never guessed from a class:

- positions: RoBERTa numbers them from ``padding_idx + 1`` (its position table has two extra rows);
- token types: RoBERTa has one, so segment B of a pair is told apart by a doubled separator
  (``<s> A </s></s> B </s>``), not by a token type;
- pooler: BERT and RoBERTa have one, ELECTRA's discriminator does not;
- embedding projection: an ELECTRA whose ``embedding_size`` differs from its hidden size maps embeddings to the
  hidden size with ``embeddings_project``; its embeddings stay at ``embedding_size`` in every student.

A student is exported as its teacher's own stock model type.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str  # as people write it
    model_type: str
    model_class: str  # transformers' encoder class, exported students are instances of it
    config_class: str
    pooler: bool
    positions_after_padding: bool  # position ids start at padding_idx + 1 (RoBERTa)
    pair_separators: int  # separator tokens between the two segments of a pair
    segment_types: bool  # segment B gets token type 1
    embedding_projection: bool = False  # embeddings may be narrower than the hidden size, projected up (ELECTRA)

    def position_offset(self, config) -> int:
        return ((getattr(config, "pad_token_id", None) or 0) + 1) if self.positions_after_padding else 0

    def embedding_size(self, config) -> int | None:
        """The embeddings' width where it differs from the hidden size (ELECTRA's projection), else None."""
        size = getattr(config, "embedding_size", None) if self.embedding_projection else None
        return size if size is not None and size != config.hidden_size else None

    def classes(self):
        """(config class, model class) of transformers."""
        import transformers

        return getattr(transformers, self.config_class), getattr(transformers, self.model_class)


def _roberta_like(name: str, model_type: str, classes: str) -> Family:
    return Family(name, model_type, f"{classes}Model", f"{classes}Config", pooler=True, positions_after_padding=True,
                  pair_separators=2, segment_types=False)


FAMILIES: dict[str, Family] = {
    "bert": Family("BERT", "bert", "BertModel", "BertConfig", pooler=True, positions_after_padding=False,
                   pair_separators=1, segment_types=True),
    "roberta": _roberta_like("RoBERTa", "roberta", "Roberta"),
    "xlm-roberta": _roberta_like("XLM-RoBERTa", "xlm-roberta", "XLMRoberta"),
    "camembert": _roberta_like("CamemBERT", "camembert", "Camembert"),
    "electra": Family("ELECTRA", "electra", "ElectraModel", "ElectraConfig", pooler=False,
                      positions_after_padding=False, pair_separators=1, segment_types=True, embedding_projection=True),
}


def family_of_config(config) -> Family:
    """The family of a transformers config, a config dict's namespace or a SuperLM config (BERT when it names
    no model type)."""
    return family_of(getattr(config, "model_type", None) or "bert")


def family_of(model_type: str | None) -> Family:
    """The family of ``model_type``; ``KeyError`` naming the supported ones otherwise."""
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise KeyError(f"model type {model_type!r} is not one of {', '.join(FAMILIES)}") from None
