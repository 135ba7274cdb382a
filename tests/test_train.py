import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from autodistil.distill import HeldOut
from autodistil.io import InputError
from autodistil.checkpoint import clear_checkpoints, load_checkpoint
from autodistil.sampling import DataOrder, SubnetSampler
from autodistil.train import Dist, TrainConfig, make_optimizer, probe_candidates, train_superlm
from tiny import (VOCAB, StopTraining, stop_after_checkpoints, superlm_params, tiny_subspace, tiny_superlm, tiny_teacher,
                  training_blocks, training_setup)


_blocks = training_blocks
_setup = training_setup


def test_superlm_from_teacher_permutes_by_importance_and_checks_the_layers():
    from autodistil.train import superlm_from_teacher

    teacher, _, sampler, _ = _setup()
    ids = torch.randint(1, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = teacher(input_ids=ids).last_hidden_state
    blocks = _blocks()
    leading, order, _ = superlm_from_teacher(tiny_teacher(), sampler.candidates,
                                             TrainConfig(max_steps=1, init_order="leading"), blocks)
    assert order is None
    ordered, order, importance = superlm_from_teacher(teacher, sampler.candidates,
                                                      TrainConfig(max_steps=1, calibration_blocks=8), blocks)
    assert order is not None and importance is not None
    with torch.no_grad():  # the teacher was permuted in place, computing the same function on permuted channels
        after = teacher(input_ids=ids).last_hidden_state
    assert torch.allclose(after, before[..., order.channels], atol=1e-5)
    name = next(k for k in leading.state_dict() if "word_embeddings" in k)
    assert not torch.equal(leading.state_dict()[name], ordered.state_dict()[name])  # other leading channels
    with pytest.raises(InputError, match="teacher_layer 7 is outside the teacher's 4 layers"):
        superlm_from_teacher(tiny_teacher(), sampler.candidates, TrainConfig(max_steps=1, teacher_layer=7), blocks)
    with pytest.raises(InputError, match="student_layer 1 is outside the 1 layers of the sub-space's shallowest"):
        superlm_from_teacher(tiny_teacher(), sampler.candidates, TrainConfig(max_steps=1, student_layer=1), blocks)


def test_sandwich_draw_is_a_function_of_the_step():
    _, _, sampler, _ = _setup()
    first = sampler(3)
    assert first == sampler(3) and len(first) == 4
    assert first[0] == sampler.largest and first[-1] == sampler.smallest
    assert len(set(first)) == 4
    assert any(sampler(s)[1:3] != first[1:3] for s in range(4, 10))
    uniform = SubnetSampler(sampler.candidates, sampler.largest, sampler.smallest, "uniform", 3, seed=0)
    assert len(uniform(0)) == 3 and uniform(0) == uniform(0)


def _reference_rows(step: int, batch_size: int, n_blocks: int, seed: int) -> np.ndarray:
    """The data order as first built (a whole permutation per step): the cached one must read the same."""
    start, rows = step * batch_size, []
    while len(rows) < batch_size:
        epoch, offset = divmod(start + len(rows), n_blocks)
        perm = np.random.default_rng([seed, epoch]).permutation(n_blocks)
        rows.extend(perm[offset: offset + batch_size - len(rows)].tolist())
    return np.asarray(rows)


def test_data_order_covers_every_block_once_per_epoch():
    order = DataOrder(20, 5, seed=1)
    rows = np.concatenate([order.rows(s) for s in range(4)])
    assert sorted(rows.tolist()) == list(range(20))
    assert not np.array_equal(order.rows(0), order.rows(4))  # new epoch order


@pytest.mark.parametrize("n_blocks,batch_size", [(23, 5), (20, 5), (7, 16), (1000, 64)])
def test_cached_data_order_equals_the_per_step_permutation(n_blocks, batch_size):
    """Batches that straddle epochs, several epochs in one batch, steps out of order (a resume): the same rows
    as the per-step permutation the default run was trained on, so its students do not change."""
    order = DataOrder(n_blocks, batch_size, seed=3)
    for step in [0, 1, 2, 9, 3, 40, 41, 5, 0]:
        assert np.array_equal(order.rows(step), _reference_rows(step, batch_size, n_blocks, 3)), step
    assert len(order._cache) <= 2  # only the epochs in use are kept


def test_throughput_counts_the_flops_a_step_computes(monkeypatch):
    """The MFU numerator: a whole layer's forward counted as torch counts the exported student's (no pooler);
    stopping at the last layer's Q/K/V drops that layer's attention and FFN; backward = 2 x forward."""
    import autodistil.throughput as tp
    from autodistil.cost import count_gflops
    from autodistil.export import build_student
    from autodistil.space import Arch

    teacher = tiny_teacher()
    arch = Arch(2, 2, 32, 48, 16)
    student = build_student(tiny_superlm(teacher, tiny_subspace()), arch)
    n, H, w = 16, arch.hidden, arch.attention_width
    assert tp.training_macs(arch, n, whole_layer=True) == pytest.approx(count_gflops(student, n) * 1e9 - H * H)
    per_layer = tp.training_macs(arch, n, True) / arch.layers
    assert tp.training_macs(arch, n) == pytest.approx(per_layer + 3 * n * H * w)
    clock = iter([100.0, 102.0])
    monkeypatch.setattr(tp.time, "perf_counter", lambda: next(clock))
    meter = tp.Throughput(Arch(4, 4, 64, 128, 16), n, whole_layer=False, peak=1e-3, world=2)
    meter.add([arch, arch], 4 * n)
    flops = 2 * 4 * (tp.training_macs(Arch(4, 4, 64, 128, 16), n) + 3 * 2 * tp.training_macs(arch, n))
    got = meter.window()
    assert got["tokens_per_second"] == pytest.approx(4 * n / 2.0)
    assert got["mfu"] == pytest.approx(flops / 2 / 2.0 / 1e9)  # per device, over the 2 s window
    assert meter.tokens == 0 and meter.flops == 0.0  # the next window starts empty


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.0), ("NVIDIA A10G", None),
                                        ("Tesla V100-SXM2-16GB", 125.0), ("NVIDIA RTX 6000 Ada Generation", None)])
def test_peak_of_a_gpu_is_read_from_its_model_name_not_a_prefix_of_it(name, peak, monkeypatch):
    import autodistil.throughput as tp

    monkeypatch.setattr(tp.torch.cuda, "get_device_name", lambda device=None: name)
    assert tp.peak_tflops(None, torch.device("cuda")) == peak
    assert tp.peak_tflops(50.0, torch.device("cuda")) == 50.0 and tp.peak_tflops(None, torch.device("cpu")) is None


def test_weight_decay_spares_biases_and_layernorms():
    _, superlm, _, cfg = _setup()
    decay, no_decay = make_optimizer(superlm, cfg).param_groups
    names = {id(p): n for n, p in superlm.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert not any(names[id(p)].endswith("bias") for p in decay["params"])


def test_training_lowers_the_heldout_loss(tmp_path):
    teacher, superlm, sampler, cfg = _setup(max_steps=30, lr=2e-3)
    heldout = HeldOut(teacher, _blocks(16, seed=9), cfg.spec(4))
    probes = probe_candidates(sampler.candidates, sampler.largest, sampler.smallest)
    before = {k: heldout.loss(superlm, a) for k, a in probes.items()}
    result = train_superlm(superlm, teacher, _blocks(), sampler, cfg, tmp_path, progress=False)
    after = {k: heldout.loss(superlm, a) for k, a in probes.items()}
    assert result.steps == 30 and len(result.history) == 30
    assert after["largest"] < before["largest"] and after["smallest"] < before["smallest"]


def test_hidden_state_term_is_trained_when_weighted(tmp_path):
    """With hidden_weight > 0 the distilled layer's output moves towards the teacher's; the objective the
    held-out set reports is relation + weight x hidden."""
    teacher, superlm, sampler, cfg = _setup(max_steps=20, lr=2e-3, hidden_weight=1.0)
    heldout = HeldOut(teacher, _blocks(16, seed=9), cfg.spec(4))
    before = heldout.losses(superlm, sampler.smallest)
    train_superlm(superlm, teacher, _blocks(), sampler, cfg, tmp_path, progress=False)
    after = heldout.losses(superlm, sampler.smallest)
    assert after["hidden"] < 0.8 * before["hidden"]
    assert after["distill"] == pytest.approx(after["relation"] + after["hidden"])
    with pytest.raises(InputError, match="hidden_weight: expected a finite number >= 0"):
        superlm_params({"max_steps": 1, "hidden_weight": -1})
    with pytest.raises(InputError, match="init_order: expected one of"):
        superlm_params({"max_steps": 1, "init_order": "random"})


def _straight_and_interrupted(tmp_path, at_step: int):
    """An uninterrupted run (dropout on: a resumed step must draw the same masks) and one stopped at
    ``at_step``."""
    teacher, straight, sampler, cfg = _setup(dropout=0.1)
    train_superlm(straight, teacher, _blocks(), sampler, cfg, tmp_path / "a", progress=False)

    def interrupt(record, step):
        if step == at_step:
            raise KeyboardInterrupt

    _, first, _, _ = _setup(dropout=0.1)
    with pytest.raises(KeyboardInterrupt):
        train_superlm(first, teacher, _blocks(), sampler, cfg, tmp_path / "b", log=interrupt, progress=False)
    return teacher, straight, sampler, cfg


def _run_folder(directory):
    """The one configuration folder under a checkpoint directory."""
    (folder,) = {p.parent for p in directory.glob("*/*.pt")}
    return folder


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    teacher, straight, sampler, cfg = _straight_and_interrupted(tmp_path, at_step=3)
    assert torch.load(_run_folder(tmp_path / "b") / "last.pt", weights_only=False)["step"] == 2  # every 2 steps
    torch.manual_seed(1234)  # a fresh process: nothing left of the interrupted run's RNG
    _, resumed, _, _ = _setup(dropout=0.1)
    result = train_superlm(resumed, teacher, _blocks(), sampler, cfg, tmp_path / "b", progress=False)
    assert result.resumed_from == 2 and result.steps == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_corrupt_checkpoint_falls_back_to_the_previous_one_then_to_scratch(tmp_path, capsys):
    teacher, straight, sampler, cfg = _straight_and_interrupted(tmp_path, at_step=5)
    last, previous = _run_folder(tmp_path / "b") / "last.pt", _run_folder(tmp_path / "b") / "previous.pt"
    assert torch.load(last, weights_only=False)["step"] == 4 and torch.load(previous, weights_only=False)["step"] == 2
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # truncated, as by a full disk
    _, resumed, _, _ = _setup(dropout=0.1)
    result = train_superlm(resumed, teacher, _blocks(), sampler, cfg, tmp_path / "b", progress=False)
    err = capsys.readouterr().err
    assert f"{last} is unreadable" in err and f"resuming from {previous} (step 2)" in err
    assert result.resumed_from == 2 and result.steps == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # the same weights as the uninterrupted run

    for path in (last, previous):  # both unreadable: from scratch, with a warning
        path.write_bytes(b"not a checkpoint")
    assert load_checkpoint(last.parent, {"any": 1}) is None
    assert "starting afresh" in capsys.readouterr().err
    clear_checkpoints(last.parent)
    assert not last.parent.exists()


def test_micro_batches_accumulate_to_the_same_step(tmp_path):
    teacher, whole, sampler, cfg = _setup()
    train_superlm(whole, teacher, _blocks(), sampler, cfg, tmp_path / "a", progress=False)
    _, split, _, _ = _setup()
    train_superlm(split, teacher, _blocks(), sampler, TrainConfig(**{**cfg.__dict__, "micro_batch_size": 1}),
                  tmp_path / "b", progress=False)
    worst = max((a - b).abs().max().item() for a, b in zip(whole.state_dict().values(), split.state_dict().values()))
    assert worst < 1e-5, worst


def test_bad_training_params_are_clear_errors():
    with pytest.raises(InputError, match="unknown key"):
        superlm_params({"max_steps": 1, "learning_rate": 1})
    with pytest.raises(InputError, match="exactly one of max_steps and max_tokens"):
        superlm_params({})
    with pytest.raises(InputError, match="sampling"):
        superlm_params({"max_steps": 1, "sampling": "greedy"})
    with pytest.raises(InputError, match="depth_rule"):
        superlm_params({"max_steps": 1, "depth_rule": "stride"})
    with pytest.raises(InputError, match="log_every: expected an integer >= 1"):
        superlm_params({"max_steps": 1, "log_every": 0})
    with pytest.raises(InputError, match="device"):
        superlm_params({"max_steps": 1, "device": "tpu"})
    with pytest.raises(InputError, match="batch_size: expected an integer, got 2.5"):
        superlm_params({"max_steps": 1, "batch_size": 2.5})
    with pytest.raises(InputError, match="superlm.max_steps: expected an integer >= 0, got -3"):  # 0: no training
        superlm_params({"max_steps": -3})
    with pytest.raises(InputError, match="superlm budget gives 0 steps"):
        superlm_params({"max_tokens": 100, "batch_size": 4}).total_steps(128)
    cfg = superlm_params({"max_steps": "3", "lr": "4e-05", "betas": ["0.9", 0.98]})  # as DVC's -S writes them
    assert cfg.max_steps == 3 and cfg.lr == 4e-5 and cfg.betas == (0.9, 0.98)
    with pytest.raises(InputError, match="gives 0 steps"):
        superlm_params({"max_tokens": 10, "batch_size": 4}).total_steps(16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out_dir, stop_after=None):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    if stop_after:
        stop_after_checkpoints(stop_after)
    try:
        teacher, superlm, sampler, cfg = _setup()
        train_superlm(superlm, teacher, _blocks(), sampler, cfg, out_dir / "ckpt", d=Dist(rank, world, rank),
                      progress=False)
        if rank == 0:
            torch.save(superlm.state_dict(), out_dir / "ddp.pt")
    except StopTraining:
        pass
    finally:
        dist.destroy_process_group()


def _worst(a: dict, b: dict) -> float:
    return max((v - b[k]).abs().max().item() for k, v in a.items())


def test_two_process_ddp_equals_one_process_on_the_same_global_batch(tmp_path):
    teacher, single, sampler, cfg = _setup()
    # the last sub-network of each step is the smallest: parameters used only by the others must still be
    # all-reduced (gradients accumulated under no_sync)
    assert sampler(0)[-1] == sampler.smallest
    train_superlm(single, teacher, _blocks(), sampler, cfg, tmp_path / "single", progress=False)

    mp.spawn(_ddp_worker, args=(2, _free_port(), tmp_path), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt")
    assert _worst(single.state_dict(), ddp) < 1e-5
    assert _worst(single.state_dict(), _setup()[1].state_dict()) > 1e-3  # the runs did train


# Resumed runs on other hardware end within this of the uninterrupted run: the same data, sub-networks and
# updates, with float sums in another order (gradients summed over 2 ranks or 4 micro-batches instead of one)
HARDWARE_TOL = 1e-5


def test_a_two_rank_run_resumes_on_one_rank_with_another_micro_batch_size(tmp_path):
    teacher, single, sampler, cfg = _setup()  # no dropout: masks are drawn per rank
    train_superlm(single, teacher, _blocks(), sampler, cfg, tmp_path / "single", progress=False)

    mp.spawn(_ddp_worker, args=(2, _free_port(), tmp_path, 1), nprocs=2, join=True)  # killed after step 2's save
    assert not (tmp_path / "ddp.pt").exists()
    assert torch.load(_run_folder(tmp_path / "ckpt") / "last.pt", weights_only=False)["step"] == 2

    _, resumed, _, _ = _setup()
    result = train_superlm(resumed, teacher, _blocks(), sampler, TrainConfig(**{**cfg.__dict__, "micro_batch_size": 1}),
                           tmp_path / "ckpt", progress=False)
    assert result.resumed_from == 2 and result.steps == 6
    assert _worst(single.state_dict(), resumed.state_dict()) < HARDWARE_TOL


def test_two_launchers_train_together_and_resume_without_a_shared_checkpoint_folder(tmp_path):
    """`python -m autodistil.launch` on two "nodes" of localhost (static rendezvous at node 0's endpoint), each
    with its own checkpoint folder: interrupted after the first checkpoint, then restarted, they resume from node
    0's checkpoint (node 1's folder stays empty) and end with the weights of a one-process run."""
    import subprocess
    import sys
    from pathlib import Path

    teacher, single, sampler, cfg = _setup()
    train_superlm(single, teacher, _blocks(), sampler, cfg, tmp_path / "single", progress=False)
    (tmp_path / "params.yaml").write_text(f"launch: {{nproc_per_node: 1, nnodes: 2, node_rank: 0, "
                                          f"rdzv_endpoint: '127.0.0.1:{_free_port()}'}}\n")
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}

    def run_nodes(*extra: str) -> list[int]:
        procs = []
        try:
            for node in (0, 1):
                folder = tmp_path / f"node{node}"
                folder.mkdir(exist_ok=True)
                with (folder / "launch.log").open("a") as log:  # a file, not a pipe that could fill up
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "autodistil.launch", "--params", str(tmp_path / "params.yaml"),
                         "--node-rank", str(node), str(tests / "ddp_node.py"), "--checkpoints", str(folder / "ckpt"),
                         "--out", str(folder), *extra], env=env, stdout=log, stderr=subprocess.STDOUT))
            return [p.wait(timeout=240) for p in procs]
        finally:
            for p in procs:  # a hang or a failed assertion leaves no launcher behind
                if p.poll() is None:
                    p.kill()
                    p.wait()

    assert run_nodes("--stop-after-checkpoints", "1") != [0, 0]  # both stopped after step 2's checkpoint
    assert torch.load(_run_folder(tmp_path / "node0" / "ckpt") / "last.pt", weights_only=False)["step"] == 2
    assert not any((tmp_path / "node1").rglob("*.pt"))
    assert run_nodes() == [0, 0]
    assert not any((tmp_path / "node1").rglob("*.pt"))  # node 1 read and wrote no checkpoint
    assert json.loads((tmp_path / "node0" / "result.json").read_text()) == {"resumed_from": 2, "world": 2}
    assert _worst(single.state_dict(), torch.load(tmp_path / "node0" / "weights.pt")) < HARDWARE_TOL


def test_a_changed_weight_param_never_overwrites_the_old_checkpoint(tmp_path, capsys):
    """A run with another learning rate checkpoints beside the old run (a folder per configuration); going back
    to the old settings resumes the old run. Settings that do not change the weights share the checkpoint."""
    teacher, first, sampler, cfg = _setup()

    def interrupt(record, step):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_superlm(first, teacher, _blocks(), sampler, cfg, tmp_path, log=interrupt, progress=False)
    old = _run_folder(tmp_path)
    _, other, _, _ = _setup()
    result = train_superlm(other, teacher, _blocks(), sampler, TrainConfig(**{**cfg.__dict__, "lr": 5e-4}), tmp_path,
                           progress=False)
    assert result.resumed_from == 0 and result.steps == 6 and result.checkpoint_dir != old
    assert "also holds checkpoints of 1 other configuration" in capsys.readouterr().err
    assert torch.load(old / "last.pt", weights_only=False)["step"] == 2  # untouched
    _, again, _, _ = _setup()
    result = train_superlm(again, teacher, _blocks(), sampler,
                           TrainConfig(**{**cfg.__dict__, "micro_batch_size": 2, "log_every": 3, "device": "cpu"}),
                           tmp_path, progress=False)
    assert result.resumed_from == 2 and result.checkpoint_dir == old
    # a teacher ordered otherwise (its importance re-measured on other hardware, a near-tie broken the other way)
    # is another configuration: the run starts afresh rather than resume against a differently permuted teacher
    _, reordered, _, _ = _setup()
    result = train_superlm(reordered, teacher, _blocks(), sampler, cfg, tmp_path, progress=False,
                           extra_config={"teacher_order": "another"})
    assert result.resumed_from == 0 and result.checkpoint_dir not in (old,)


def test_superlm_job_builds_trains_reports_and_saves(tmp_path):
    """The superlm stage's job: teacher folder and corpus blocks in, a trained SuperLM (with its importance
    order) out, the probes' held-out loss lower after training."""
    from autodistil.importance import ORDER_FILE
    from autodistil.superlm import SuperLM
    from autodistil.superlm_job import SuperLMJob

    teacher = tiny_teacher()
    teacher.save_pretrained(tmp_path / "teacher")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    np.save(corpus / "train.npy", _blocks())
    np.save(corpus / "heldout.npy", _blocks(16, seed=9))
    cfg = TrainConfig(max_steps=20, lr=2e-3, batch_size=8, dropout=0.0, calibration_blocks=8, eval_blocks=16)
    job = SuperLMJob.build(cfg, str(tmp_path / "teacher"), tiny_subspace(), corpus, {"data": "test"})
    assert job.order is not None and set(job.probes) == {"largest", "middle", "smallest"}
    assert job.dist.world == 1 and job.dist.master and job.device == torch.device("cpu")
    before = job.heldout_report()
    result = job.train(tmp_path / "ckpt")
    after = job.heldout_report()
    assert result.steps == 20 and after["smallest"] < before["smallest"]  # (the largest is the teacher itself)
    job.save(tmp_path / "out")
    assert (tmp_path / "out" / ORDER_FILE).is_file()
    loaded = SuperLM.load(tmp_path / "out")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), job.superlm.state_dict().values()))
    with pytest.raises(InputError, match="outside the teacher's 4 layers"):
        SuperLMJob.build(TrainConfig(max_steps=1, teacher_layer=7), str(tmp_path / "teacher"), tiny_subspace(),
                         corpus, {})
