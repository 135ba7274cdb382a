"""Corpus -> blocks: document reading, the by-document split, block packing, budgets, storage, the hub
path (local Parquet), bad input, scale (processes, streamed output, later stages' needs), and the stage end to end."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import re
from pathlib import Path

import numpy as np
import pytest

from autodistil.corpus import (
    Need, _NpyWriter, block_dtype, build_blocks, heldout_by_hash, iter_hub_documents, iter_local_documents,
    load_blocks, load_meta, resolve_workers, write_blocks,
)
from autodistil.io import InputError
from stage_runner import run_stage_script


WORDS = ["the", "cat", "dog", "sat", "on", "mat", "is", "good", "bad", "movie", "not", "and"]


def make_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 15))) + f" {i}."
                 for _ in range(rng.randint(1, 3))]
        docs.append("\n".join(lines))
    return docs


def write_corpus(folder: Path, docs: list[str], files: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    per = (len(docs) + files - 1) // files
    for k in range(files):
        chunk = docs[k * per:(k + 1) * per]
        # documents separated by blank lines (some with stray spaces, some doubled); a BOM on the first file
        text = ("\ufeff" if k == 0 else "") + "\n\n".join(chunk) + "\n   \n\n"
        (folder / f"part{k}.txt").write_text(text, encoding="utf-8")
    (folder / "notes.md").write_text("not a corpus file\n")
    return folder


def test_local_documents_in_file_order(tmp_path):
    docs = make_docs(10)
    folder = write_corpus(tmp_path / "c", docs)
    assert list(iter_local_documents(folder)) == docs
    assert list(iter_local_documents(folder / "part1.txt")) == docs[5:]  # a single file works too


def test_split_is_by_document_and_deterministic():
    docs = make_docs(400)
    held = {d for d in docs if heldout_by_hash(d, seed=0, fraction=0.1)}
    assert 15 < len(held) < 70  # about 10 %
    # independent of order; a different seed gives a different split
    assert {d for d in reversed(docs) if heldout_by_hash(d, 0, 0.1)} == held
    assert {d for d in docs if heldout_by_hash(d, 1, 0.1)} != held


def expected_blocks(token_docs: list[list[int]], seq_len: int, cls: int, sep: int) -> np.ndarray:
    stream: list[int] = []
    for ids in token_docs:
        if stream:
            stream.append(sep)
        stream.extend(ids)
    body = seq_len - 2
    n = len(stream) // body
    return np.array([[cls, *stream[i * body:(i + 1) * body], sep] for i in range(n)]).reshape(n, seq_len)


def test_blocks_are_the_documents_token_stream(tiny_tokenizer):
    docs = make_docs(120)
    seq_len = 16
    res = build_blocks(iter(docs), tiny_tokenizer, seq_len=seq_len, train_tokens=10**9, heldout_blocks=10**6,
                       heldout_fraction=0.2, seed=0, batch_docs=7, progress=False)
    cls, sep = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id
    for split in ("train", "heldout"):
        mine = [d for d in docs if heldout_by_hash(d, 0, 0.2) == (split == "heldout")]
        ids = tiny_tokenizer(mine, add_special_tokens=False)["input_ids"]
        arr = res.arrays[split]
        np.testing.assert_array_equal(arr, expected_blocks(ids, seq_len, cls, sep))
        assert (arr[:, 0] == cls).all() and (arr[:, -1] == sep).all()
        assert res.stats[split]["documents"] == len(mine)
        assert res.stats[split]["blocks"] == len(arr) > 0 and res.stats[split]["tokens"] == arr.size
    assert res.stats["exhausted"] is True and res.stats["documents_scanned"] == len(docs)
    assert res.arrays["train"].dtype == np.uint16 and tiny_tokenizer.unk_token_id not in res.arrays["train"]


def test_budgets_cap_blocks_and_ignore_batch_size(tiny_tokenizer):
    docs = make_docs(300)
    runs = [build_blocks(iter(docs), tiny_tokenizer, seq_len=16, train_tokens=16 * 20 + 5, heldout_blocks=4,
                         heldout_fraction=0.1, batch_docs=b, progress=False) for b in (1, 5, 64)]
    for r in runs:
        assert r.arrays["train"].shape == (20, 16) and r.arrays["heldout"].shape == (4, 16)
        assert r.stats["exhausted"] is False and r.stats["documents_scanned"] < len(docs)
        np.testing.assert_array_equal(r.arrays["train"], runs[0].arrays["train"])
        np.testing.assert_array_equal(r.arrays["heldout"], runs[0].arrays["heldout"])


def test_dtype_follows_vocab_size():
    assert block_dtype(30522) == np.uint16 and block_dtype(65536) == np.uint16
    assert block_dtype(65537) == np.int32 and block_dtype(250_000) == np.int32


def test_save_and_load_memmap(tmp_path, tiny_tokenizer):
    options = dict(seq_len=12, train_tokens=12 * 10, heldout_blocks=3, heldout_fraction=0.2, progress=False)
    out = tmp_path / "corpus"
    stats = write_blocks(iter(make_docs(100)), tiny_tokenizer, out, meta={"tokenizer": "tiny"}, **options)
    res = build_blocks(iter(make_docs(100)), tiny_tokenizer, **options)
    train, held = load_blocks(out, "train"), load_blocks(out, "heldout")
    assert isinstance(train, np.memmap) and train.shape == (10, 12) and held.shape == (3, 12)
    assert train.dtype == np.uint16
    np.testing.assert_array_equal(train, res.arrays["train"])  # streamed to disk = built in memory
    np.testing.assert_array_equal(held, res.arrays["heldout"])
    meta = load_meta(out)
    assert meta == {"tokenizer": "tiny", **stats} == {"tokenizer": "tiny", **res.stats}
    assert meta["seq_len"] == 12 and meta["train"]["blocks"] == 10
    assert sorted(p.name for p in out.parent.iterdir()) == ["corpus"]  # no temporary left beside it
    with pytest.raises(InputError, match="unknown corpus split 'dev'"):
        load_blocks(out, "dev")


def test_hub_path_with_local_parquet(tmp_path, tiny_tokenizer, monkeypatch):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = make_docs(30)
    (tmp_path / "wt").mkdir()
    rows = [d if i % 5 else "" for i, d in enumerate(docs)]  # wikitext-style blank rows are skipped
    pq.write_table(pa.table({"text": rows, "id": list(range(len(rows)))}), tmp_path / "wt" / "train-0.parquet")
    kept = [r for r in rows if r]
    assert list(iter_hub_documents(str(tmp_path / "wt"))) == kept

    real = datasets.load_dataset
    calls = []

    def fake(path, name=None, split=None, streaming=False, **kw):  # the network edge only
        calls.append((path, name, split, streaming))
        return real("parquet", data_files=str(tmp_path / "wt" / "*.parquet"), split="train", streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    got = list(iter_hub_documents("Salesforce/wikitext", "wikitext-103-raw-v1", "train", "text"))
    assert got == kept and calls == [("Salesforce/wikitext", "wikitext-103-raw-v1", "train", True)]
    with pytest.raises(InputError, match="no field 'content'"):
        list(iter_hub_documents("Salesforce/wikitext", "x", "train", "content"))


# ------------------------------------------------------------------------------------------ bad input
def test_empty_folder(tmp_path, tiny_tokenizer):
    (tmp_path / "c").mkdir()
    with pytest.raises(InputError, match=r"c: empty corpus \(no \*.txt files\)"):
        build_blocks(iter_local_documents(tmp_path / "c"), tiny_tokenizer, progress=False)


def test_blank_files(tmp_path, tiny_tokenizer):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("\n  \n\n")
    (tmp_path / "c" / "b.txt").write_text("")
    with pytest.raises(InputError, match=r"empty corpus \(no non-blank documents\)"):
        build_blocks(iter_local_documents(tmp_path / "c"), tiny_tokenizer, source=str(tmp_path / "c"),
                     progress=False)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=r"nope: corpus folder not found"):
        list(iter_local_documents(tmp_path / "nope"))


def test_corpus_too_small_for_a_heldout_block(tmp_path, tiny_tokenizer):
    with pytest.raises(InputError, match=r"corpus too small: 0 heldout blocks"):
        build_blocks(iter(["the cat sat"] * 3), tiny_tokenizer, seq_len=8, heldout_fraction=0.01, progress=False)


def test_bad_encoding_names_file_and_line(tmp_path):
    (tmp_path / "c").mkdir()
    p = tmp_path / "c" / "a.txt"
    p.write_bytes(b"the cat\n\nsat on\nthe m\xffat\n")
    with pytest.raises(InputError, match=rf"{p}:4: not valid UTF-8 \(byte 0xff at column 6\)"):
        list(iter_local_documents(tmp_path / "c"))


def test_bad_budgets(tiny_tokenizer):
    with pytest.raises(InputError, match="seq_len must be >= 3"):
        build_blocks(iter(["a"]), tiny_tokenizer, seq_len=2, progress=False)
    with pytest.raises(InputError, match=r"heldout_fraction must be in \(0, 1\)"):
        build_blocks(iter(["a"]), tiny_tokenizer, heldout_fraction=1.5, progress=False)


# ---------------------------------------------------------------------------------------------- scale
def digests(folder: Path) -> tuple[str, ...]:
    return tuple(hashlib.sha256((folder / f).read_bytes()).hexdigest()[:16]
                 for f in ("train.npy", "heldout.npy", "meta.json"))


# sha256[:16] of train.npy, heldout.npy, meta.json as the implementation before workers and streaming wrote them
# (blocks built in memory, np.save), for make_docs(300), seq_len 16, heldout_fraction 0.1, seed 0
PREVIOUS = {
    "budgets met": (dict(train_tokens=16 * 40, heldout_blocks=6),
                    ("f15b526847d724d2", "f880e447ed52ea96", "d0dc484b8c689f6b")),
    "corpus exhausted": (dict(train_tokens=10**9, heldout_blocks=10**6),
                         ("7ae027b57ed835e1", "e6938299d7bffe49", "e588e56e0e5cfa57")),
    # train full early: later train documents are skipped, in 43 chunks (more than the 4 kept in flight)
    "skips, small chunks": (dict(train_tokens=16 * 5, heldout_blocks=20, batch_docs=7),
                            ("0c6aa13f5a17f0e1", "4ae19033505c17ae", "ccfbba8d2d462da6")),
}


@pytest.mark.parametrize("case", list(PREVIOUS))
def test_same_bytes_as_before_with_1_and_2_processes(case, tmp_path, tiny_tokenizer):
    options, previous = PREVIOUS[case]
    for workers in (1, 2):
        out = tmp_path / f"workers-{workers}"
        write_blocks(iter(make_docs(300)), tiny_tokenizer, out, meta={"source": "fixture"}, seq_len=16,
                     heldout_fraction=0.1, seed=0, workers=workers, progress=False, **options)
        assert digests(out) == previous, f"{workers} process(es)"
    assert not multiprocessing.active_children()  # the pool is gone


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_npy_written_in_pieces_is_np_save(tmp_path, dtype):
    rows = np.arange(1000 * 5, dtype=dtype).reshape(1000, 5)
    for n in (0, 1, 7, 1000):
        with _NpyWriter(tmp_path / "streamed.npy", 5, np.dtype(dtype)) as w:
            for start in range(0, n, 3):
                w(rows[start:min(start + 3, n)])
            w.finish()
        np.save(tmp_path / "saved.npy", rows[:n])
        assert (tmp_path / "streamed.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()


def test_progress_shows_tokens_per_second(tiny_tokenizer, capsys):
    build_blocks(iter(make_docs(50)), tiny_tokenizer, seq_len=16, heldout_fraction=0.2, progress=True)
    assert "tok/s" in capsys.readouterr().err


def test_workers_setting():
    assert resolve_workers(3) == 3 and resolve_workers("auto") >= 1
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(InputError, match=r"prepare_corpus.workers must be a positive integer or 'auto'"):
            resolve_workers(bad)


def test_heldout_too_small_for_a_later_stage_fails_and_writes_nothing(tmp_path, tiny_tokenizer):
    out = tmp_path / "data" / "corpus"
    with pytest.raises(InputError) as e:  # make_docs(300) gives 72 held-out blocks at seq_len 16 (PREVIOUS)
        write_blocks(iter(make_docs(300)), tiny_tokenizer, out, needs={"heldout": Need(100, "search.eval_blocks")},
                     seq_len=16, train_tokens=10**9, heldout_blocks=512, heldout_fraction=0.1, workers=2,
                     progress=False)
    assert str(e.value) == (
        f"{out}: heldout split has 72 blocks but search.eval_blocks asks for 100 (prepare_corpus.heldout_fraction"
        " 0.1, heldout_blocks 512): use a larger corpus or raise prepare_corpus.heldout_fraction, or lower"
        " search.eval_blocks")
    assert list(out.parent.iterdir()) == []  # blocks were streamed into a temporary folder, now removed


def test_budget_below_a_need_fails_before_reading(tmp_path, tiny_tokenizer):
    read = []

    def documents():
        for d in make_docs(50):
            read.append(d)
            yield d

    with pytest.raises(InputError, match=r"prepare_corpus.train_tokens 480 gives 30 train blocks \(seq_len 16\) but"
                                         r" superlm.calibration_blocks asks for 64: raise prepare_corpus.train_tokens"):
        write_blocks(documents(), tiny_tokenizer, tmp_path / "data" / "corpus", seq_len=16, train_tokens=16 * 30,
                     needs={"train": Need(64, "superlm.calibration_blocks")}, progress=False)
    assert len(read) == 1 and not (tmp_path / "data").exists()


def test_error_while_reading_leaves_no_output_and_no_workers(tmp_path, tiny_tokenizer):
    def documents():
        yield from make_docs(200)
        raise InputError("part9.txt:3: not valid UTF-8")

    with pytest.raises(InputError, match="part9.txt:3"):
        write_blocks(documents(), tiny_tokenizer, tmp_path / "data" / "corpus", seq_len=16, train_tokens=10**9,
                     heldout_blocks=10**6, batch_docs=16, workers=2, progress=False)
    assert list((tmp_path / "data").iterdir()) == [] and not multiprocessing.active_children()


# ------------------------------------------------------------------------------- the stage, end to end
def run_stage(cwd: Path, monkeypatch, capsys) -> tuple[int, str]:
    return run_stage_script("prepare_corpus.py", [], cwd, monkeypatch, capsys, exp_name="corpus-exp")

def write_params(cwd: Path, tokenizer_dir: Path, later: dict | None = None, **overrides) -> None:
    """A params.yaml with prepare_corpus (plus ``overrides``) and the ``later`` stages' sections."""
    import yaml

    params = {
        "teacher": {"source": str(tokenizer_dir)},
        "mlflow": {"experiment": "test-corpus"},
        "prepare_corpus": {"source": "raw", "hub": {"dataset": None}, "seq_len": 16, "train_tokens": 16 * 30,
                           "heldout_blocks": 5, "heldout_fraction": 0.1, "seed": 0, **overrides},
        **(later or {}),
    }
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))


def test_stage_end_to_end_with_mlflow_run(tmp_path, tiny_tokenizer_dir, mlflow_root, monkeypatch, capsys):
    write_corpus(tmp_path / "raw", make_docs(400))
    write_params(tmp_path, tiny_tokenizer_dir, workers=2,
                 later={"search": {"eval_blocks": 5}, "superlm": {"eval_blocks": 4, "batch_size": 30},
                        "probes": {"eval_blocks": 4}})
    code, err = run_stage(tmp_path, monkeypatch, capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics/corpus.json").read_text())
    assert metrics["train"]["blocks"] == 30 and metrics["heldout"]["blocks"] == 5 and metrics["seq_len"] == 16
    assert metrics["workers"] == 2
    assert load_blocks(tmp_path / "data/corpus", "train").shape == (30, 16)
    assert load_meta(tmp_path / "data/corpus")["tokenizer"] == str(tiny_tokenizer_dir)

    from mlflow import MlflowClient

    from autodistil.tracking import tracking_uri

    run = MlflowClient(tracking_uri()).get_run(metrics["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "prepare_corpus"
    assert run.data.tags["stage"] == "prepare_corpus" and run.data.tags["dvc_exp_name"] == "corpus-exp"
    assert run.data.params["prepare_corpus.seq_len"] == "16"
    assert run.data.metrics["train.blocks"] == 30


def test_stage_empty_corpus_one_line_exit_1_nothing_written(tmp_path, tiny_tokenizer_dir, mlflow_root,
                                                            monkeypatch, capsys):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "empty.txt").write_text("\n\n")
    write_params(tmp_path, tiny_tokenizer_dir)
    code, err = run_stage(tmp_path, monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == "error: raw: empty corpus (no non-blank documents)"
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_stage_bad_param_type(tmp_path, tiny_tokenizer_dir, mlflow_root, monkeypatch, capsys):
    write_corpus(tmp_path / "raw", make_docs(10))
    write_params(tmp_path, tiny_tokenizer_dir)
    import yaml

    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["prepare_corpus"]["seq_len"] = "long"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code, err = run_stage(tmp_path, monkeypatch, capsys)
    assert code == 1 and err.strip() == "error: params.yaml: prepare_corpus.seq_len: expected an integer, got 'long'"
    assert not (tmp_path / "data").exists()


# the held-out blocks later stages take, from params: the largest ask is named; a corpus or budget that falls short
# fails here, in one line, writing nothing (the train split has no floor: see stages/prepare_corpus.py)
LATER = {"search": {"eval_blocks": 64}, "superlm": {"eval_blocks": 128, "batch_size": 16, "calibration_blocks": 64,
                                                   "init_order": "importance", "depth_rule": "ends"},
         "probes": {"eval_blocks": 32}}  # a section left out asks for its default


@pytest.mark.parametrize("overrides,later,message", [
    (dict(train_tokens=16 * 10**4, heldout_blocks=10**4), LATER,
     r"data/corpus: heldout split has \d+ blocks but superlm.eval_blocks asks for 128 \(prepare_corpus.heldout_fraction"
     r" 0.1, heldout_blocks 10000\): use a larger corpus or raise prepare_corpus.heldout_fraction, or lower"
     r" superlm.eval_blocks"),
    (dict(heldout_blocks=100), LATER,
     r"data/corpus: prepare_corpus.heldout_blocks 100 gives 100 heldout blocks \(seq_len 16\) but"
     r" superlm.eval_blocks asks for 128: raise prepare_corpus.heldout_blocks or lower superlm.eval_blocks"),
    (dict(heldout_blocks=50), {**LATER, "superlm": {**LATER["superlm"], "eval_blocks": 32}},
     r"data/corpus: prepare_corpus.heldout_blocks 50 gives 50 heldout blocks \(seq_len 16\) but"
     r" search.eval_blocks asks for 64: raise prepare_corpus.heldout_blocks or lower search.eval_blocks"),
], ids=["corpus too small for held-out", "budget below superlm.eval_blocks", "budget below search.eval_blocks"])
def test_stage_too_small_for_later_stages(overrides, later, message, tmp_path, tiny_tokenizer_dir, mlflow_root,
                                          monkeypatch, capsys):
    write_corpus(tmp_path / "raw", make_docs(400))
    write_params(tmp_path, tiny_tokenizer_dir, later=later, **overrides)
    code, err = run_stage(tmp_path, monkeypatch, capsys)
    errors = [line for line in err.splitlines() if "error" in line]  # the progress bar may precede it
    assert code == 1 and len(errors) == 1 and re.fullmatch(f"error: {message}", errors[0]), err
    assert not (tmp_path / "data" / "corpus").exists() and not (tmp_path / "metrics").exists()
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())


def test_stage_bad_workers(tmp_path, tiny_tokenizer_dir, mlflow_root, monkeypatch, capsys):
    write_corpus(tmp_path / "raw", make_docs(10))
    write_params(tmp_path, tiny_tokenizer_dir, workers="many")
    code, err = run_stage(tmp_path, monkeypatch, capsys)
    assert code == 1 and err.strip() == (
        "error: params.yaml: prepare_corpus.workers: expected an integer or one of auto, got 'many'")
    assert not (tmp_path / "data").exists()


def test_blocks_open_as_a_read_only_memmap_advised_for_random_reads(tmp_path):
    np.save(tmp_path / "train.npy", np.arange(40, dtype=np.uint16).reshape(10, 4))
    blocks = load_blocks(tmp_path, "train")
    assert isinstance(blocks, np.memmap) and not blocks.flags.writeable
    assert blocks[[7, 2]].tolist() == [[28, 29, 30, 31], [8, 9, 10, 11]]
    smaps = Path("/proc/self/smaps")
    if smaps.is_file():  # Linux: the kernel lists the advice as VmFlags "rr" (random read) of the file's mapping
        mapping = smaps.read_text().split(str(tmp_path / "train.npy"), 1)[1]
        flags = next(line for line in mapping.splitlines() if line.startswith("VmFlags:")).split()
        assert "rr" in flags, flags


def _killed_worker(texts):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_that_dies_fails_the_preparation_instead_of_hanging(tmp_path, tiny_tokenizer, monkeypatch):
    """A tokenising process killed from outside (the OOM killer, SIGKILL) ends the stage with an error."""
    from concurrent.futures.process import BrokenProcessPool

    from autodistil import corpus

    monkeypatch.setattr(corpus, "_worker_token_ids", _killed_worker)  # the forked workers inherit the patch
    with pytest.raises(BrokenProcessPool):
        write_blocks(iter(make_docs(200)), tiny_tokenizer, tmp_path / "data" / "corpus", seq_len=16,
                     train_tokens=16 * 40, heldout_blocks=4, workers=2, progress=False)
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").iterdir())
