"""Host time of fine-tuning's reads from a prepared GLUE split: batches (one Arrow read per row against one per
batch) and the token counts that length grouping sorts by (the column as Python lists against Arrow's offsets).

    python bench/finetune_batches.py [--rows 392702] [--batch-size 32] [--batches 200]

Fine-tuning used to build each batch from ``dataset[j]`` row by row; it now reads ``dataset[indices]`` (one
take, columns back). At MNLI's size (392,702 training pairs, the default here) on a GPU, a small student's step
takes a few milliseconds, so the host's share of a step is what this measures. The split is synthetic (random
token ids, lengths 8 to 128 as GLUE pairs have), saved and memory-mapped with ``datasets`` as
``autodistil.glue.load_glue`` does; both readers take the same random batches, side by side, and must return
the same rows. Prints milliseconds per batch of each and their ratio, and the seconds to read every row's token
count both ways; writes bench/finetune_batches.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from autodistil.finetune import token_counts


def synthetic_split(rows: int, folder: Path):
    import datasets
    import pyarrow as pa

    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 129, size=rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ids = pa.ListArray.from_arrays(offsets, rng.integers(1000, 30000, size=int(offsets[-1]), dtype=np.int32))
    zeros = pa.ListArray.from_arrays(offsets, np.zeros(int(offsets[-1]), dtype=np.int8))
    table = pa.table({"input_ids": ids, "token_type_ids": zeros, "attention_mask": zeros,
                      "label": rng.integers(0, 3, size=rows)})
    datasets.Dataset(table).save_to_disk(str(folder))
    return datasets.load_from_disk(str(folder))


def ms_per_batch(read, batches) -> float:
    t0 = time.perf_counter()
    for rows in batches:
        read(rows)
    return (time.perf_counter() - t0) / len(batches) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=392_702)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).with_name("finetune_batches.json")))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        split = synthetic_split(args.rows, Path(d) / "train")
        rng = np.random.default_rng(1)
        batches = [[int(j) for j in rng.choice(args.rows, args.batch_size, replace=False)] for _ in range(args.batches)]

        def per_row(rows):
            return [split[j] for j in rows]

        def per_batch(rows):
            return split[rows]

        a, b = per_row(batches[0]), per_batch(batches[0])
        assert [r["input_ids"] for r in a] == b["input_ids"] and [r["label"] for r in a] == b["label"]
        per_row_ms, per_batch_ms = [], []
        for _ in range(3):  # interleaved: a busy machine slows both alike
            per_row_ms.append(ms_per_batch(per_row, batches))
            per_batch_ms.append(ms_per_batch(per_batch, batches))
        t0 = time.perf_counter()
        from_lists = [len(ids) for ids in split["input_ids"]]
        t1 = time.perf_counter()
        from_offsets = token_counts(split)
        t2 = time.perf_counter()
        assert from_lists == from_offsets
    result = {"rows": args.rows, "batch_size": args.batch_size, "batches": args.batches,
              "per_row_ms": round(float(np.median(per_row_ms)), 3), "per_batch_ms": round(float(np.median(per_batch_ms)), 3)}
    result["ratio"] = round(result["per_row_ms"] / result["per_batch_ms"], 2)
    result |= {"lengths_lists_s": round(t1 - t0, 3), "lengths_offsets_s": round(t2 - t1, 4)}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
