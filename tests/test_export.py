import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification

from autodistil.export import INFO_FILE, export_student, superlm_hidden
from autodistil.space import Arch
from tiny import padded_batch, tiny_subspace, tiny_superlm, tiny_teacher, tiny_tokenizer

TOL = 1e-5

LOAD_WITHOUT_AUTODISTIL = textwrap.dedent("""
    import sys, torch
    from transformers import AutoModel
    from transformers import AutoModelForSequenceClassification
    path, ids, mask, types = sys.argv[1], *(torch.load(p) for p in sys.argv[2:5])
    model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
    AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, trust_remote_code=True)  # fine-tunable
    assert not any(m == "autodistil" or m.startswith("autodistil.") for m in sys.modules), "autodistil was imported"
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    torch.save(out, sys.argv[5])
    print(type(model).__name__, model.config.model_type)
""")


def _reload_elsewhere(folder, batch, tmp_path):
    """Load ``folder`` in a fresh interpreter that never imports autodistil; return its last hidden state."""
    files = []
    for name, t in zip(("ids", "mask", "types"), batch):
        files.append(tmp_path / f"{name}.pt")
        torch.save(t, files[-1])
    out = tmp_path / "out.pt"
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_AUTODISTIL, str(folder), *map(str, files), str(out)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return torch.load(out), proc.stdout.split()


@pytest.mark.parametrize(
    "convention, arch, model_type",
    [("stock", Arch(3, 4, 48, 96, 12), "bert"), ("fixed_head", Arch(3, 2, 48, 96, 16), "autodistil_bert")],
)
def test_exported_folder_loads_without_autodistil_and_matches_the_slice(tmp_path, convention, arch, model_type):
    superlm = tiny_superlm(tiny_teacher(), tiny_subspace(convention))
    folder = export_student(superlm, arch, tmp_path / "student", info={"subspace": "tiny"})
    batch = padded_batch(seed=7)
    out, (cls_name, loaded_type) = _reload_elsewhere(folder, batch, tmp_path)
    assert loaded_type == model_type
    assert cls_name == ("BertModel" if convention == "stock" else "AutoDistilBertModel")
    ref = superlm_hidden(superlm, arch, *batch)
    assert (out - ref)[batch[1].bool()].abs().max().item() <= TOL

    record = json.loads((folder / INFO_FILE).read_text())
    assert Arch.from_dict(record["arch"]) == arch and record["convention"] == convention
    assert record["subspace"] == "tiny" and record["model_type"] == model_type
    assert record["params_module"] == record["costs"]["params_exact"]
    assert {"params_paper", "gflops_paper", "gflops_exact"} <= set(record["costs"])


def test_fixed_head_student_loads_through_the_auto_classes_once_autodistil_is_imported(tmp_path):
    superlm = tiny_superlm(tiny_teacher(), tiny_subspace("fixed_head"))
    arch = Arch(2, 4, 32, 64, 16)  # attention width 64 over hidden 32
    folder = export_student(superlm, arch, tmp_path / "s")
    model = AutoModel.from_pretrained(folder).eval()
    assert model.encoder.layer[0].attention.self.query.weight.shape == (64, 32)
    clf = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    assert type(clf).__name__ == "AutoDistilBertForSequenceClassification"
    ids, mask, types = padded_batch()
    with torch.no_grad():
        pooled = clf.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    assert (pooled - superlm_hidden(superlm, arch, ids, mask, types))[mask.bool()].abs().max() <= TOL


def test_tokenizer_travels_with_the_model(tmp_path):
    from transformers import AutoTokenizer

    superlm = tiny_superlm(tiny_teacher(), tiny_subspace())
    (tmp_path / "tok").mkdir()
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    folder = export_student(superlm, Arch(1, 2, 32, 48, 16), tmp_path / "s", tokenizer=tokenizer)
    assert AutoTokenizer.from_pretrained(folder)("hello world")["input_ids"] == tokenizer("hello world")["input_ids"]


def test_failed_export_leaves_nothing_behind(tmp_path):
    superlm = tiny_superlm(tiny_teacher(), tiny_subspace())

    class BrokenTokenizer:
        def save_pretrained(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export_student(superlm, Arch(1, 2, 32, 48, 16), tmp_path / "s", tokenizer=BrokenTokenizer())
    assert list(tmp_path.iterdir()) == []
