"""Export a sub-network of a SuperLM as a standard Hugging Face model folder.

A ``stock`` architecture (attention width = hidden size) becomes a plain model of the teacher's own type
(``bert``, ``roberta``, ``electra`` ...) that ``transformers.AutoModel.from_pretrained`` loads without autodistil. A ``fixed_head`` one becomes an
``autodistil_bert`` model whose code travels inside the folder (``trust_remote_code=True``), or that
loads directly once ``autodistil.modeling_autodistil_bert`` is imported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from .config import Params
from .cost import Vocab, costs, count_params
from .family import family_of
from .io import atomic_path
from .modeling_autodistil_bert import AutoDistilBertConfig, AutoDistilBertModel
from .space import Arch
from .superlm import SuperLM

INFO_FILE = "autodistil.json"


def student_config(superlm: SuperLM, arch: Arch):
    """The student's transformers config: the teacher's family's own config class for a ``stock`` architecture
    (BERT, RoBERTa, ELECTRA ...), the bundled BERT variant for ``fixed_head`` ones (BERT teachers only)."""
    cfg = superlm.config
    family = family_of(cfg.model_type)
    common = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=arch.hidden,
        num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads,
        intermediate_size=arch.ffn,
        hidden_act=cfg.hidden_act,
        hidden_dropout_prob=cfg.hidden_dropout,
        attention_probs_dropout_prob=cfg.attention_dropout,
        max_position_embeddings=cfg.max_position_embeddings,
        type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=cfg.pad_token_id,
        architectures=None,
    )
    if arch.convention == "stock":
        config_cls, _ = family.classes()
        if family.embedding_projection:  # embeddings keep their own width where the teacher projects them
            if cfg.embedding_size == arch.hidden:  # the stock model would have no projection: not a candidate
                raise ValueError(f"{arch.name}: as wide as the teacher's projected embeddings "
                                 f"({cfg.embedding_size}); {family.model_class} has no projection at that width")
            common["embedding_size"] = cfg.embedding_size or arch.hidden
        return config_cls(**common)
    if family.model_type != "bert":
        raise ValueError(f"{arch.name}: the fixed_head convention exports BERT students only; a "
                         f"{family.model_type} teacher needs convention: stock")
    return AutoDistilBertConfig(attention_head_size=arch.head_size, **common)


def build_student(superlm: SuperLM, arch: Arch):
    """A standalone transformers model of the teacher's family holding the SuperLM's weights for ``arch`` (eval
    mode, CPU)."""
    config = student_config(superlm, arch)
    model_cls = family_of(superlm.config.model_type).classes()[1] if arch.convention == "stock" else (
        AutoDistilBertModel)
    model = model_cls(config)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state = {k: v.detach().cpu() for k, v in superlm.sliced_state_dict(arch, shapes).items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def export_student(
    superlm: SuperLM,
    arch: Arch,
    out_dir: str | Path,
    tokenizer=None,
    info: dict | None = None,
    seq_len: int = 128,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``arch`` as a model folder (weights, config, tokenizer, ``autodistil.json``), atomically.
    ``extra_files``: ``{relative path: text}`` written beside them (the teacher's sentence-transformers modules,
    :func:`autodistil.pooling.sentence_transformers_files`)."""
    out_dir = Path(out_dir)
    model = build_student(superlm, arch)
    cfg = superlm.config
    record = {
        "arch": arch.to_dict(),
        "convention": arch.convention,
        "model_type": model.config.model_type,
        "costs": costs(arch, seq_len, cfg.relation_heads, Vocab.from_config(cfg)),
        "params_module": count_params(model),
        "superlm": {"envelope": cfg.to_dict()["envelope"], "depth_rule": cfg.depth_rule,
                    "layers_kept": superlm.layer_indices(arch), **cfg.provenance},
        **(info or {}),
    }
    if arch.convention != "stock":
        record["load_with"] = ("AutoModel.from_pretrained(path, trust_remote_code=True), or import "
                              "autodistil.modeling_autodistil_bert first")
        # save_pretrained then copies modeling_autodistil_bert.py into the folder and writes auto_map.
        AutoDistilBertConfig.register_for_auto_class()
        AutoDistilBertModel.register_for_auto_class("AutoModel")

    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        if arch.convention != "stock":  # save_pretrained maps only the saved class; fine-tuning needs the classifier
            config_file = tmp / "config.json"
            config = json.loads(config_file.read_text())
            config["auto_map"]["AutoModelForSequenceClassification"] = (
                "modeling_autodistil_bert.AutoDistilBertForSequenceClassification")
            config_file.write_text(json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        write_files(tmp, extra_files or {})
        (tmp / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out_dir


def write_files(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


@torch.no_grad()
def superlm_hidden(superlm: SuperLM, arch: Arch, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
    """Last hidden state of the SuperLM slice ``arch`` in eval mode (the reference for an exported model)."""
    was_training = superlm.training
    superlm.eval()
    try:
        return superlm(input_ids, attention_mask, token_type_ids, arch=arch, distill_layer=None).last_hidden_state
    finally:
        superlm.train(was_training)


def _family_name(record: dict) -> str:
    """BERT for the bundled fixed-head model type, the family's name otherwise."""
    model_type = record.get("model_type", "bert")
    return "BERT" if model_type == "autodistil_bert" else family_of(model_type).name


def read_info(folder: str | Path) -> dict:
    """The ``autodistil.json`` of a model folder (teacher snapshot, student or random baseline)."""
    return json.loads((Path(folder) / INFO_FILE).read_text())


def export_random_baseline(student_dir: str | Path, out_dir: str | Path) -> Path:
    """``random-<student>``: the student's config, tokenizer and costs, and no weights.

    Fine-tuning builds it with transformers' own random initialisation (seeded by the fine-tuning seed), so
    a baseline differs from its student only in the weights the distillation produced.
    """
    student_dir, out_dir = Path(student_dir), Path(out_dir)
    student = read_info(student_dir)
    record = {key: student[key] for key in ("arch", "convention", "model_type", "costs", "params_module",
                                            "latency", "subspace") if key in student}
    record.update(kind="random", student=student.get("student"),
                  init=f"random: transformers' {_family_name(student)} initialisation, seeded by the fine-tuning seed")
    with atomic_path(out_dir, is_dir=True) as tmp:
        for f in student_dir.iterdir():  # config, tokenizer files, remote code, pooling modules; not the weights
            if f.is_dir():
                shutil.copytree(f, tmp / f.name)
            elif f.name != INFO_FILE and not f.name.endswith((".safetensors", ".bin")):
                shutil.copy2(f, tmp / f.name)
        (tmp / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out_dir


def teacher_module_files(source: str, hidden: int) -> dict[str, str]:
    """The teacher's sentence-transformers module files for a model of width ``hidden`` (none for a plain teacher
    or a hub id not on disk)."""
    from .pooling import sentence_transformers_files
    from .teacher import resolve_source

    folder = Path(resolve_source(source))
    return sentence_transformers_files(folder, hidden) if folder.is_dir() else {}


def snapshot_teacher(params: Params, out_dir: str | Path, metrics_path: str | Path):
    """The teacher stage's work: the teacher of ``params`` saved as a model folder (its encoder, tokenizer and
    ``autodistil.json`` with its arch and costs at ``search.seq_len``), and its latency (``search.latency``),
    as a :class:`autodistil.record.Record`. The latency stays out of the folder, so that a re-snapshot of the
    same teacher is byte-identical and re-runs no fine-tuning job."""
    import time

    from .io import InputError
    from .latency import measure_latency
    from .record import Record
    from .space import TeacherDims
    from .teacher import load_teacher, load_tokenizer

    t0, source = time.perf_counter(), params.teacher.source
    try:
        teacher, tokenizer = load_teacher(source), load_tokenizer(source)
    except (OSError, ValueError) as e:
        raise InputError(f"params.yaml: teacher.source {source!r} cannot be loaded: {e}".splitlines()[0]) from None
    dims = TeacherDims.from_config(teacher.config)
    arch = Arch(dims.layers, dims.heads, dims.hidden, dims.ffn, dims.hidden // dims.heads)
    record = {"kind": "teacher", "source": source, "arch": arch.to_dict(), "convention": arch.convention,
              "model_type": teacher.config.model_type,
              "costs": costs(arch, params.search.seq_len, dims.heads, Vocab.from_config(teacher.config)),
              "params_module": count_params(teacher)}
    with atomic_path(out_dir, is_dir=True) as tmp:
        teacher.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_files(tmp, teacher_module_files(source, dims.hidden))
        (tmp / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    latency = measure_latency(teacher, params.search.latency)
    return Record({"arch": arch.name, "latency_ms": latency["latency_ms"], "latency": latency}, metrics_path,
                  logged={"": {"latency_ms": latency["latency_ms"], **record["costs"],
                               "params_module": record["params_module"]}},
                  summary={"teacher": source, "arch": arch.name,
                           "gflops_paper": round(record["costs"]["gflops_paper"], 4),
                           "latency_ms": round(latency["latency_ms"], 2), "seconds": round(time.perf_counter() - t0, 1)})


def check_fits(superlm_dir: str | Path, arch: Arch, subspace: str) -> None:
    """Refuse (:class:`autodistil.io.InputError`) a chosen ``arch`` that the SuperLM of ``superlm_dir`` does not
    hold, as its superlm.json states (no weights are loaded): the search ran on another SuperLM."""
    from .io import InputError
    from .superlm import SuperLMConfig

    config = SuperLMConfig.from_dict(json.loads((Path(superlm_dir) / "superlm.json").read_text()))
    if not config.envelope.contains(arch):
        raise InputError(f"{superlm_dir}: {arch.name} (from metrics/search/{subspace}.json) does not fit this SuperLM; "
                         f"re-run `dvc repro search@{subspace}`")


def export_job(params: Params, student: str, subspace: str, search: dict, runs: dict, superlm_dir: str | Path,
               out: str | Path, metrics_path: str | Path):
    """The export stage's work: ``student``, chosen by the search of ``subspace`` (``search``: its metrics JSON),
    cut from the SuperLM of ``superlm_dir`` into ``out/<student>`` (weights, the teacher's tokenizer,
    ``autodistil.json``) with its random-init twin ``out/random-<student>``, and its latency measured on the
    exported model (``search.latency``); the latency and ``runs`` (the SuperLM and search runs) as a
    :class:`autodistil.record.Record`. What changes from one export to the next stays out of the folders."""
    import time

    from .latency import measure_latency
    from .record import Record
    from .teacher import load_tokenizer

    t0, source = time.perf_counter(), params.teacher.source
    chosen = search["students"][student]
    arch = Arch.from_dict(chosen["arch"])
    superlm = SuperLM.load(superlm_dir).eval()
    info = {"kind": "student", "student": student, "subspace": subspace, "budget": chosen["budget"],
            "budget_convention": search.get("convention"), "heldout_loss": chosen["loss"],
            **({"proxy": chosen["proxy"]} if "proxy" in chosen else {}),
            **search.get("provenance", {})}
    student_dir = Path(out) / student
    export_student(superlm, arch, student_dir, load_tokenizer(source), info, search.get("seq_len", 128),
                   teacher_module_files(source, arch.hidden))
    export_random_baseline(student_dir, Path(out) / f"random-{student}")
    record = read_info(student_dir)
    # latency of the model users will load: the same class and weights as the exported folder
    latency = measure_latency(build_student(superlm, arch), params.search.latency)
    logged = {"latency_ms": latency["latency_ms"], "heldout_loss": chosen["loss"], **record["costs"],
              "seconds": time.perf_counter() - t0}
    return Record({"student": student, "subspace": subspace, "arch": arch.name, "latency_ms": latency["latency_ms"],
                   "latency": latency, **runs}, metrics_path, logged={"": logged},
                  summary={"student": student, "arch": arch.name, "latency_ms": round(latency["latency_ms"], 2),
                           "gflops_paper": round(record["costs"]["gflops_paper"], 4),
                           "seconds": round(time.perf_counter() - t0, 1)})
