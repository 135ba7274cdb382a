"""Stage prepare_corpus: unlabelled text (local folder or hub dataset) -> train / held-out token blocks.

    python stages/prepare_corpus.py <paths>     (the paths: as dvc.yaml's cmd passes them)

Reads params.yaml (teacher.source, mlflow.experiment, prepare_corpus.*, and the held-out blocks later stages take:
search.eval_blocks, superlm.eval_blocks, probes.eval_blocks, read but not DVC params of the stage: see dvc.yaml), writes data/corpus/
(train.npy, heldout.npy, meta.json) and metrics/corpus.json, both atomically.
Bad input, or a corpus too small for the later stages: one line on stderr, exit 1, nothing written.
"""

import argparse
import time

from autodistil.io import InputError, int_param, load_params, number, param, run_main


def later_needs(params: dict, source: str):
    """The held-out blocks later stages take (keys absent from params ask for nothing), so that a corpus too small
    for them fails here rather than after the SuperLMs trained. (The train split has no such floor: a batch larger
    than the corpus reads it more than once, and the importance calibration takes what there is.)"""
    from autodistil.corpus import Need

    keys = ("search.eval_blocks", "superlm.eval_blocks", "probes.eval_blocks")
    asks = [Need(int_param(params, k, minimum=1, source=source), k) for k in keys if param(params, k, None) is not None]
    return {"heldout": max(asks, key=lambda n: n.blocks)} if asks else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()

    params = load_params(args.params)
    p = param(params, "prepare_corpus", source=args.params)

    def get(key, default=None, required=False):
        if required:
            return param(params, f"prepare_corpus.{key}", source=args.params)
        return p.get(key, default)

    ints = {k: int_param(params, f"prepare_corpus.{k}", minimum=1, source=args.params)
            for k in ("seq_len", "train_tokens", "heldout_blocks")}
    seed = int_param(params, "prepare_corpus.seed", 0, source=args.params)
    needs = later_needs(params, args.params)
    try:
        heldout_fraction = number(get("heldout_fraction", 0.02))
    except (TypeError, ValueError):
        raise InputError(f"{args.params}: prepare_corpus.heldout_fraction must be a number, "
                         f"got {get('heldout_fraction')!r}") from None
    hub = get("hub") or {}
    if not isinstance(hub, dict):
        raise InputError(f"{args.params}: prepare_corpus.hub must be a mapping (dataset, config, split, text_field)")

    from autodistil.corpus import iter_hub_documents, iter_local_documents, resolve_workers, write_blocks
    from autodistil.teacher import load_tokenizer
    from autodistil.tracking import log_metrics, stage_run, write_metrics

    try:
        workers = resolve_workers(get("workers", 1))
    except InputError as e:
        raise InputError(f"{args.params}: {e}") from None

    if hub.get("dataset"):
        source = hub["dataset"] + (f":{hub['config']}" if hub.get("config") else "")
        docs = iter_hub_documents(hub["dataset"], hub.get("config"), hub.get("split", "train"),
                                  hub.get("text_field", "text"))
    else:
        source = str(get("source", required=True))
        docs = iter_local_documents(source)
    teacher = param(params, "teacher.source", source=args.params)
    tokenizer = load_tokenizer(teacher)

    t0 = time.perf_counter()
    logged = {"teacher": params.get("teacher", {}), "prepare_corpus": p}
    with stage_run("prepare_corpus", logged, param(params, "mlflow.experiment", default="autodistil")) as run:
        st = write_blocks(
            docs, tokenizer, args.out,
            meta={"source": source, "tokenizer": teacher},
            needs=needs,
            **ints,
            heldout_fraction=heldout_fraction,
            seed=seed,
            workers=workers,
            source=source,
        )
        seconds = round(time.perf_counter() - t0, 2)
        metrics = {
            "source": source,
            **st,
            "workers": workers,
            "seconds": seconds,
            "tokens_per_second": round((st["train"]["document_tokens"] + st["heldout"]["document_tokens"])
                                       / max(seconds, 1e-9)),
        }
        log_metrics({k: v for k, v in metrics.items() if k not in ("source", "dtype")})
        write_metrics(args.metrics, metrics, run)
    print(f"prepare_corpus: train {st['train']['blocks']} blocks ({st['train']['documents']} documents), "
          f"held-out {st['heldout']['blocks']} blocks ({st['heldout']['documents']} documents), "
          f"{st['documents_scanned']} documents scanned, {seconds} s")


if __name__ == "__main__":
    run_main(main)
