"""GLUE loading: all nine tasks from TSV fixtures written here, the hub's Parquet layout, tokenisation,
the on-disk format, metrics, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autodistil import glue
from autodistil.glue import TASKS, get_task, load_glue, load_hub_splits, load_tsv_splits, prepare_task, read_tsv
from autodistil.io import InputError
from stage_runner import run_stage_script


BOM = "\ufeff"
MNLI_TRAIN_HEADER = ("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse "
                     "sentence2_parse sentence1 sentence2 label1 gold_label").split()
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
STSB_HEADER = "index genre filename year old_index source1 source2 sentence1 sentence2 score".split()


def mnli_row(header, i, s1, s2, gold):
    cells = {c: "x" for c in header} | {"index": str(i), "sentence1": s1, "sentence2": s2, "gold_label": gold}
    return "\t".join(cells[c] for c in header)


def stsb_row(i, s1, s2, score):
    cells = {c: "x" for c in STSB_HEADER} | {"index": str(i), "sentence1": s1, "sentence2": s2, "score": score}
    return "\t".join(cells[c] for c in STSB_HEADER)


# task -> split -> (file text, [(texts..., label id or score)])  -- the expected parse of each fixture
def fixtures() -> dict[str, dict[str, tuple[str, list[tuple]]]]:
    f: dict[str, dict[str, tuple[str, list[tuple]]]] = {}
    f["CoLA"] = {  # no header; 4 columns: source, label, original label, sentence
        "train": ("gj04\t1\t\tThe cat sat on the mat.\ngj04\t0\t*\tCat the on sat mat.\nr-67\t1\t\tA dog sat.\n",
                  [("The cat sat on the mat.", 1), ("Cat the on sat mat.", 0), ("A dog sat.", 1)]),
        "dev": ("gj04\t0\t*\tSat sat sat.\r\ngj04\t1\t\tThe dog is good.\r\n",  # CRLF line ends
                [("Sat sat sat.", 0), ("The dog is good.", 1)]),
    }
    f["SST-2"] = {  # real files have a space before the tab in rows
        "train": ("sentence\tlabel\na good movie \t1\na bad movie \t0\nnot good \t0\n",
                  [("a good movie ", 1), ("a bad movie ", 0), ("not good ", 0)]),
        "dev": ("sentence\tlabel\nthe cat is good \t1\n", [("the cat is good ", 1)]),
    }
    f["MRPC"] = {  # header starts with a byte-order mark
        "train": (BOM + "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t11\t12\tThe cat sat .\tA cat sat .\n"
                  "0\t13\t14\tThe dog \" sat .\tA mat .\n",
                  [("The cat sat .", "A cat sat .", 1), ("The dog \" sat .", "A mat .", 0)]),
        "dev": (BOM + "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1\t2\tgood\tbad\n", [("good", "bad", 0)]),
    }
    f["STS-B"] = {
        "train": ("\t".join(STSB_HEADER) + "\n" + stsb_row(0, "a cat sat", "the cat sat", "5.000") + "\n"
                  + stsb_row(1, "a dog", "the mat", "0.750") + "\n",
                  [("a cat sat", "the cat sat", 5.0), ("a dog", "the mat", 0.75)]),
        "dev": ("\t".join(STSB_HEADER) + "\n" + stsb_row(0, "good", "bad", "2.5") + "\n",
                [("good", "bad", 2.5)]),
    }
    qqp_h = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    f["QQP"] = {
        "train": (qqp_h + "0\t1\t2\tis the cat good?\tis a cat good?\t1\n1\t3\t4\tdog?\tmat?\t0\n",
                  [("is the cat good?", "is a cat good?", 1), ("dog?", "mat?", 0)]),
        "dev": (qqp_h + "5\t6\t7\tcat?\tcat?\t1\n", [("cat?", "cat?", 1)]),
    }
    f["MNLI"] = {
        "train": ("\t".join(MNLI_TRAIN_HEADER) + "\n"
                  + mnli_row(MNLI_TRAIN_HEADER, 0, "the cat sat", "a cat sat", "entailment") + "\n"
                  + mnli_row(MNLI_TRAIN_HEADER, 1, "the cat sat", "a dog sat", "contradiction") + "\n"
                  + mnli_row(MNLI_TRAIN_HEADER, 2, "the cat sat", "it is good", "neutral") + "\n",
                  [("the cat sat", "a cat sat", 0), ("the cat sat", "a dog sat", 2), ("the cat sat", "it is good", 1)]),
        "dev_matched": ("\t".join(MNLI_DEV_HEADER) + "\n"
                        + mnli_row(MNLI_DEV_HEADER, 0, "a dog", "a dog", "entailment") + "\n",
                        [("a dog", "a dog", 0)]),
        "dev_mismatched": ("\t".join(MNLI_DEV_HEADER) + "\n"
                           + mnli_row(MNLI_DEV_HEADER, 0, "a mat", "no mat", "contradiction") + "\n"
                           + mnli_row(MNLI_DEV_HEADER, 1, "a mat", "a cat", "neutral") + "\n",
                           [("a mat", "no mat", 2), ("a mat", "a cat", 1)]),
    }
    f["QNLI"] = {
        "train": ("index\tquestion\tsentence\tlabel\n0\twho sat?\tthe cat sat.\tentailment\n"
                  "1\twho sat?\tit is good.\tnot_entailment\n",
                  [("who sat?", "the cat sat.", 0), ("who sat?", "it is good.", 1)]),
        "dev": ("index\tquestion\tsentence\tlabel\n0\twhat?\tcat.\tnot_entailment\n", [("what?", "cat.", 1)]),
    }
    f["RTE"] = {
        "train": ("index\tsentence1\tsentence2\tlabel\n0\tthe cat sat.\ta cat sat.\tentailment\n",
                  [("the cat sat.", "a cat sat.", 0)]),
        "dev": ("index\tsentence1\tsentence2\tlabel\n0\tthe dog.\ta cat.\tnot_entailment\n"
                "1\tthe cat.\ta cat.\tentailment\n",
                [("the dog.", "a cat.", 1), ("the cat.", "a cat.", 0)]),
    }
    f["WNLI"] = {
        "train": ("index\tsentence1\tsentence2\tlabel\n0\tthe cat sat on the mat.\tthe mat sat.\t0\n"
                  "1\tthe cat sat.\tit sat.\t1\n",
                  [("the cat sat on the mat.", "the mat sat.", 0), ("the cat sat.", "it sat.", 1)]),
        "dev": ("index\tsentence1\tsentence2\tlabel\n0\ta.\tb.\t1\n", [("a.", "b.", 1)]),
    }
    return f


FIXTURES = fixtures()


def write_glue(root: Path, tasks=None) -> Path:
    for task, splits in FIXTURES.items():
        if tasks is not None and task not in tasks:
            continue
        (root / task).mkdir(parents=True, exist_ok=True)
        for split, (text, _) in splits.items():
            (root / task / f"{split}.tsv").write_bytes(text.encode("utf-8"))
        # a test file (no labels) next to them must be ignored
        (root / task / "test.tsv").write_text("index\tsentence\n0\tunlabelled\n", encoding="utf-8")
    return root


@pytest.fixture
def glue_dir(tmp_path) -> Path:
    return write_glue(tmp_path / "glue")


def test_registry_knows_all_nine_tasks():
    assert list(TASKS) == ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]
    assert TASKS["STS-B"].is_regression and TASKS["STS-B"].num_labels == 1
    assert TASKS["STS-B"].metrics == ("pearson", "spearmanr")
    assert TASKS["MNLI"].num_labels == 3 and TASKS["MNLI"].dev_splits == ("dev_matched", "dev_mismatched")
    assert TASKS["MNLI"].labels == ("entailment", "neutral", "contradiction")  # nyu-mll/glue ids
    assert TASKS["CoLA"].main_metric == "matthews_correlation"
    assert TASKS["MRPC"].metrics == TASKS["QQP"].metrics == ("accuracy", "f1")  # accuracy first, as the paper quotes
    for name in ("SST-2", "QNLI", "RTE", "WNLI"):
        assert TASKS[name].metrics == ("accuracy",) and TASKS[name].num_labels == 2
    assert get_task("sst2") is get_task("SST-2") is get_task("sst-2")
    assert get_task("stsb").name == "STS-B" and get_task("mnli").name == "MNLI"


def test_unknown_task_name():
    with pytest.raises(InputError, match=r"unknown GLUE task 'SST-3'"):
        get_task("SST-3")


@pytest.mark.parametrize("task", list(TASKS))
def test_tsv_parse_counts_and_labels(glue_dir, task):
    spec = TASKS[task]
    splits = load_tsv_splits(spec, glue_dir)
    assert set(splits) == set(spec.splits)
    for split, (_, expected) in FIXTURES[task].items():
        got = [(*ex.texts, ex.label) for ex in splits[split]]
        assert got == expected, (task, split)
        if spec.is_regression:
            assert all(isinstance(ex.label, float) for ex in splits[split])


@pytest.mark.parametrize("task", list(TASKS))
def test_prepare_and_load_roundtrip(glue_dir, tmp_path, tiny_tokenizer, task):
    spec = TASKS[task]
    splits = load_tsv_splits(spec, glue_dir)
    out = tmp_path / "out" / task
    stats = prepare_task(spec, splits, tiny_tokenizer, out, max_length=32, progress=False)
    dsd, spec2, meta = load_glue(out)
    assert spec2 is spec and meta["task"]["num_labels"] == spec.num_labels
    assert set(dsd) == set(spec.splits)
    cls, sep = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id
    for split, (_, expected) in FIXTURES[task].items():
        ds = dsd[split]
        assert ds.column_names == ["input_ids", "token_type_ids", "attention_mask", "label"]
        assert len(ds) == len(expected) == stats[split]["examples"]
        for row, exp in zip(ds, expected):
            texts, label = exp[:-1], exp[-1]
            assert row["input_ids"] == tiny_tokenizer(*texts)["input_ids"]
            assert row["input_ids"][0] == cls and row["input_ids"][-1] == sep
            assert row["attention_mask"] == [1] * len(row["input_ids"])
            n_first = len(tiny_tokenizer(texts[0])["input_ids"])
            assert row["token_type_ids"] == [0] * n_first + [1] * (len(row["input_ids"]) - n_first)
            assert row["label"] == pytest.approx(label)
    if spec.is_regression:
        assert dsd["train"].features["label"].dtype == "float32"
    else:
        assert dsd["train"].features["label"].names == list(spec.labels)


def test_exact_token_ids(glue_dir, tmp_path, tiny_tokenizer, tiny_vocab):
    spec = TASKS["MRPC"]
    prepare_task(spec, load_tsv_splits(spec, glue_dir), tiny_tokenizer, tmp_path / "mrpc", progress=False)
    dsd, _, _ = load_glue(tmp_path / "mrpc")
    v = tiny_vocab
    # "The cat sat ." / "A cat sat ."
    assert dsd["train"][0]["input_ids"] == [v["[CLS]"], v["the"], v["cat"], v["sat"], v["."], v["[SEP]"],
                                            v["a"], v["cat"], v["sat"], v["."], v["[SEP]"]]
    assert dsd["train"][0]["token_type_ids"] == [0] * 6 + [1] * 5
    # "good" / "bad": whole word, then a word made of pieces b ##a ##d
    assert dsd["dev"][0]["input_ids"] == [v["[CLS]"], v["good"], v["[SEP]"], v["bad"], v["[SEP]"]]
    assert dsd["dev"][0]["label"] == 0


def test_truncation_and_caps(glue_dir, tmp_path, tiny_tokenizer):
    spec = TASKS["CoLA"]
    splits = load_tsv_splits(spec, glue_dir)
    stats = prepare_task(spec, splits, tiny_tokenizer, tmp_path / "c", max_length=5, max_train_samples=2,
                         max_eval_samples=1, seed=3, progress=False)
    dsd, _, _ = load_glue(tmp_path / "c")
    assert len(dsd["train"]) == 2 and len(dsd["dev"]) == 1
    assert stats["train"]["source_examples"] == 3 and stats["train"]["examples"] == 2
    assert all(len(ids) <= 5 and ids[-1] == tiny_tokenizer.sep_token_id for ids in dsd["train"]["input_ids"])
    assert stats["train"]["truncated"] >= 1
    # the cap is a seeded subset kept in file order: same seed, same rows
    kept = glue.cap(splits["train"], 2, seed=3)
    assert kept == glue.cap(splits["train"], 2, seed=3)
    assert [splits["train"].index(e) for e in kept] == sorted(splits["train"].index(e) for e in kept)


# ------------------------------------------------------------------------------------------- hub path
def write_hub_mirror(root: Path) -> Path:
    """Parquet files laid out like the hub repository nyu-mll/glue (<config>/<split>-00000-of-00001.parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for task, splits in FIXTURES.items():
        spec = TASKS[task]
        (root / spec.hub_name).mkdir(parents=True)
        for split, (_, expected) in splits.items():
            cols = {c: [row[j] for row in expected] for j, c in enumerate(spec.hub_text_columns)}
            cols["label"] = [row[-1] for row in expected]
            cols["idx"] = list(range(len(expected)))
            pq.write_table(pa.table(cols), root / spec.hub_name / f"{spec.hub_splits[split]}-00000-of-00001.parquet")
        test = {c: ["x"] for c in spec.hub_text_columns} | {"label": [-1], "idx": [0]}
        pq.write_table(pa.table(test), root / spec.hub_name / "test-00000-of-00001.parquet")
    return root


@pytest.fixture
def hub_dir(tmp_path) -> Path:
    return write_hub_mirror(tmp_path / "hub")


@pytest.mark.parametrize("task", list(TASKS))
def test_hub_parquet_matches_tsv(glue_dir, hub_dir, task):
    spec = TASKS[task]
    from_tsv = load_tsv_splits(spec, glue_dir)
    from_hub = load_hub_splits(spec, str(hub_dir))
    assert set(from_hub) == set(from_tsv) == set(spec.splits)
    for split in spec.splits:
        assert [(e.texts, e.label) for e in from_hub[split]] == [(e.texts, e.label) for e in from_tsv[split]]


def test_hub_id_calls_load_dataset_with_config(hub_dir, monkeypatch):
    """The network edge (datasets.load_dataset on a hub id) is replaced; everything after it is real."""
    import datasets

    real = datasets.load_dataset
    calls = []

    def fake(path, name=None, **kw):
        calls.append((path, name))
        files = {p.name.split("-")[0]: str(p) for p in (hub_dir / name).glob("*.parquet")}
        return real("parquet", data_files=files)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    splits = load_hub_splits(TASKS["MNLI"], "nyu-mll/glue")
    assert calls == [("nyu-mll/glue", "mnli")]
    assert [e.label for e in splits["dev_mismatched"]] == [2, 1]


def test_hub_bad_label_and_missing_split(hub_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = hub_dir / "rte" / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"sentence1": ["a"], "sentence2": ["b"], "label": [7], "idx": [0]}), path)
    with pytest.raises(InputError, match=r"rte/train row 0: unknown label 7"):
        load_hub_splits(TASKS["RTE"], str(hub_dir))
    (hub_dir / "wnli" / "validation-00000-of-00001.parquet").unlink()
    with pytest.raises(InputError, match=r"wnli: missing split 'validation'"):
        load_hub_splits(TASKS["WNLI"], str(hub_dir))


# ------------------------------------------------------------------------------------------ bad input
def test_wrong_column_count_names_file_and_line(glue_dir):
    p = glue_dir / "RTE" / "train.tsv"
    p.write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tc\tentailment\n")
    with pytest.raises(InputError, match=rf"{p}:3: expected 4 tab-separated columns, found 5"):
        load_tsv_splits(TASKS["RTE"], glue_dir)


def test_unknown_label_names_file_and_line(glue_dir):
    p = glue_dir / "SST-2" / "dev.tsv"
    p.write_text("sentence\tlabel\ngood\t1\nbad\t2\n")
    with pytest.raises(InputError, match=rf"{p}:3: unknown label '2' for SST-2 \(expected one of 0, 1\)"):
        load_tsv_splits(TASKS["SST-2"], glue_dir)


def test_unknown_mnli_label(glue_dir):
    p = glue_dir / "MNLI" / "dev_matched.tsv"
    p.write_text("\t".join(MNLI_DEV_HEADER) + "\n" + mnli_row(MNLI_DEV_HEADER, 0, "a", "b", "maybe") + "\n")
    with pytest.raises(InputError, match=rf"{p}:2: unknown label 'maybe'"):
        load_tsv_splits(TASKS["MNLI"], glue_dir)


def test_non_numeric_score(glue_dir):
    p = glue_dir / "STS-B" / "train.tsv"
    p.write_text("\t".join(STSB_HEADER) + "\n" + stsb_row(0, "a", "b", "high") + "\n")
    with pytest.raises(InputError, match=rf"{p}:2: score 'high' is not a number"):
        read_tsv(TASKS["STS-B"], p)


def test_missing_split(glue_dir):
    (glue_dir / "MNLI" / "dev_mismatched.tsv").unlink()
    with pytest.raises(InputError, match=r"MNLI/dev_mismatched.tsv: missing split 'dev_mismatched' of MNLI"):
        load_tsv_splits(TASKS["MNLI"], glue_dir)


def test_missing_task_folder(tmp_path):
    with pytest.raises(InputError, match=r"no folder for task QQP"):
        load_tsv_splits(TASKS["QQP"], tmp_path)


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_empty_file(glue_dir, content):
    p = glue_dir / "MRPC" / "train.tsv"
    p.write_bytes(content)
    with pytest.raises(InputError, match=rf"{p}: file is empty"):
        load_tsv_splits(TASKS["MRPC"], glue_dir)


def test_header_only_file(glue_dir):
    p = glue_dir / "QNLI" / "dev.tsv"
    p.write_text("index\tquestion\tsentence\tlabel\n")
    with pytest.raises(InputError, match=rf"{p}: no data rows"):
        read_tsv(TASKS["QNLI"], p)


def test_bad_encoding_names_line(glue_dir):
    p = glue_dir / "CoLA" / "train.tsv"
    p.write_bytes(b"gj04\t1\t\tfine.\ngj04\t1\t\talso fine.\ngj04\t0\t*\tcaf\xe9 latin-1.\n")
    with pytest.raises(InputError, match=rf"{p}:3: not valid UTF-8 \(byte 0xe9 at column 13\)"):
        load_tsv_splits(TASKS["CoLA"], glue_dir)


def test_header_lacking_columns(glue_dir):
    p = glue_dir / "QQP" / "train.tsv"
    p.write_text("id\tquestion1\tquestion2\tlabel\n0\ta\tb\t1\n")
    with pytest.raises(InputError, match=rf"{p}:1: header lacks column\(s\) 'is_duplicate'"):
        read_tsv(TASKS["QQP"], p)


def test_failed_prepare_leaves_nothing(glue_dir, tmp_path, tiny_tokenizer):
    """A failure while writing leaves neither the output folder nor a temporary one."""
    spec = TASKS["RTE"]
    splits = load_tsv_splits(spec, glue_dir)
    splits["dev"][0].label = 5  # not a valid class id: ClassLabel refuses it while building the dataset
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="Class label 5"):
        prepare_task(spec, splits, tiny_tokenizer, out / "RTE", progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_compute_metrics():
    m = glue.compute_metrics("MRPC", [1, 1, 0, 0], [1, 0, 0, 0])
    assert m == pytest.approx({"f1": 2 / 3, "accuracy": 0.75})
    assert glue.compute_metrics("CoLA", [1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx({"matthews_correlation": 1.0})
    s = glue.compute_metrics("STS-B", [0.1, 0.2, 0.3, 0.9], [1.0, 2.0, 3.0, 4.0])
    assert s["spearmanr"] == pytest.approx(1.0) and 0.8 < s["pearson"] < 1.0
    # a collapsed regressor predicts one value: no correlation (0, as MCC for a constant classifier), not NaN
    assert glue.compute_metrics("STS-B", [2.5] * 4, [1.0, 2.0, 3.0, 4.0]) == {"pearson": 0.0, "spearmanr": 0.0}


# ------------------------------------------------------------------------------- the stage, end to end
def run_stage(cwd: Path, *args: str, monkeypatch, capsys) -> tuple[int, str]:
    return run_stage_script("prepare_glue.py", args, cwd, monkeypatch, capsys, exp_name="test-exp")

def write_params(cwd: Path, tokenizer_dir: Path, **glue_params):
    import yaml

    params = {
        "teacher": {"source": str(tokenizer_dir)},
        "mlflow": {"experiment": "test-glue"},
        "prepare_glue": {"tasks": ["SST-2"], "source": "glue", "hub": None, "max_length": 16,
                         "max_train_samples": 2, "max_eval_samples": None, "seed": 0, **glue_params},
    }
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))


def test_stage_writes_outputs_metrics_and_mlflow_run(tmp_path, tiny_tokenizer_dir, mlflow_root, monkeypatch, capsys):
    write_glue(tmp_path / "glue", tasks=["SST-2"])
    write_params(tmp_path, tiny_tokenizer_dir)
    code, err = run_stage(tmp_path, "SST-2", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics/prepare_glue/SST-2.json").read_text())
    assert metrics["train"]["examples"] == 2 and metrics["train"]["source_examples"] == 3  # the default cap
    assert metrics["dev"]["examples"] == 1 and metrics["num_labels"] == 2
    dsd, spec, _ = load_glue(tmp_path / "data/glue/SST-2")
    assert spec.name == "SST-2" and len(dsd["train"]) == 2

    from mlflow import MlflowClient

    from autodistil.tracking import tracking_uri

    run = MlflowClient(tracking_uri()).get_run(metrics["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "prepare_glue@SST-2" and run.data.tags["dvc_exp_name"] == "test-exp"
    assert run.data.params["prepare_glue.max_train_samples"] == "2" and run.data.params["task"] == "SST-2"
    assert run.data.metrics["train.examples"] == 2


def test_stage_caps_per_task(tmp_path, tiny_tokenizer_dir, mlflow_root, monkeypatch, capsys):
    write_glue(tmp_path / "glue", tasks=["SST-2"])
    write_params(tmp_path, tiny_tokenizer_dir, max_train_samples={"default": 1, "SST-2": None})
    code, err = run_stage(tmp_path, "SST-2", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "metrics/prepare_glue/SST-2.json").read_text())["train"]["examples"] == 3
    write_params(tmp_path, tiny_tokenizer_dir, max_train_samples={"default": "x"})
    code, err = run_stage(tmp_path, "SST-2", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and "prepare_glue.max_train_samples.default: expected an integer or null, got 'x'" in err


@pytest.mark.parametrize("glue_params, message", [
    ({"tasks": ["sst2"]}, "prepare_glue.tasks: 'sst2' must be written as the GLUE folder name 'SST-2'"),
    ({"max_train_samples": {"default": 2, "cola": 5}},
     "prepare_glue.max_train_samples: 'cola' must be written as the GLUE folder name 'CoLA'"),
    ({"max_eval_samples": 0}, "prepare_glue.max_eval_samples: expected a count >= 1 or null, got 0"),
    ({"max_length": 4096}, "prepare_glue.max_length is 4096 tokens, the teacher"),
])
def test_stage_refuses_names_caps_and_lengths_it_cannot_honour(tmp_path, tiny_tokenizer_dir, mlflow_root,
                                                               glue_params, message, monkeypatch, capsys):
    write_glue(tmp_path / "glue", tasks=["SST-2"])
    write_params(tmp_path, tiny_tokenizer_dir, **glue_params)
    code, err = run_stage(tmp_path, "SST-2", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1 and message in err, err
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize("case", ["bad_label", "unknown_task"])
def test_stage_bad_input_one_line_exit_1_nothing_written(tmp_path, tiny_tokenizer_dir, mlflow_root, case,
                                                         monkeypatch, capsys):
    write_glue(tmp_path / "glue", tasks=["SST-2"])
    write_params(tmp_path, tiny_tokenizer_dir)
    task = "SST-2"
    if case == "bad_label":
        (tmp_path / "glue/SST-2/train.tsv").write_text("sentence\tlabel\ngood\tpositive\n")
    else:
        task = "SST-5"
    code, err = run_stage(tmp_path, task, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert ("glue/SST-2/train.tsv:2: unknown label 'positive'" in lines[0]) if case == "bad_label" \
        else ("unknown GLUE task 'SST-5'" in lines[0])
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
