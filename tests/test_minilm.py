"""The real packaged teacher: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads of 32)."""

import subprocess
import sys
import textwrap

import pytest
import torch

from autodistil.export import export_student, superlm_hidden
from autodistil.space import SubSpace, TeacherDims
from autodistil.superlm import SuperLM, SuperLMConfig
from autodistil.space import Envelope
from autodistil.teacher import load_teacher, load_tokenizer

TEXTS = ["Distillation turns one large model into many small ones.", "A short one.", "Hello world, again!"]


@pytest.fixture(scope="module")
def minilm():
    return load_teacher(), load_tokenizer()


def test_superlm_from_minilm_reproduces_it_and_exports_a_stock_student(minilm, tmp_path):
    teacher, tokenizer = minilm
    dims = TeacherDims.from_config(teacher.config)
    assert dims == TeacherDims(layers=6, heads=12, hidden=384, ffn=1536)
    sub = SubSpace.from_dict("all", {"layers": [3, 6], "heads": [6, 12], "hidden": [192, 384], "mlp_ratio": [2, 4]})
    superlm = SuperLM.from_teacher(teacher, SuperLMConfig.from_teacher_config(teacher.config,
                                                                             Envelope.of(sub.candidates(dims))))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        ref = teacher(**batch).last_hidden_state
    full = superlm_hidden(superlm, dims.as_arch(), batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert (full - ref)[real].abs().max().item() <= 1e-5

    arch = sub.smallest(dims)
    folder = export_student(superlm, arch, tmp_path / "student", tokenizer=tokenizer)
    script = textwrap.dedent(f"""
        import sys, torch
        from transformers import AutoModel, AutoTokenizer
        tok = AutoTokenizer.from_pretrained({str(folder)!r})
        model = AutoModel.from_pretrained({str(folder)!r}).eval()
        assert "autodistil" not in sys.modules
        with torch.no_grad():
            out = model(**tok({TEXTS!r}, padding=True, return_tensors="pt")).last_hidden_state
        torch.save(out, {str(tmp_path / 'out.pt')!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = torch.load(tmp_path / "out.pt")
    ref = superlm_hidden(superlm, arch, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert out.shape == (3, batch["input_ids"].shape[1], 192)
    assert (out - ref)[real].abs().max().item() <= 1e-5
