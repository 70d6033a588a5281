"""Two-process CPU training through tools/dist_train.sh (torchrun, gloo, mmengine's launcher)."""
import os
import socket
import subprocess
import sys

import pytest
import torch

from cp_plugin.testing import assert_close_to_rounding, randomise_norms
from test_tools import run_tool
from toy_runs import REPO, load_run_checkpoint, scalars, write_small_toy_config

pytestmark = pytest.mark.slow  # see setup.cfg: left out by make test-quick


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist_train(config, work, *flags):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    result = subprocess.run(["bash", "tools/dist_train.sh", str(config), "2", "--work-dir", str(work),
                             *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    return log


def final_state(work):
    checkpoint = load_run_checkpoint(work / "epoch_2.pth")
    return checkpoint["state_dict"], checkpoint["optimizer"]["state"]


def test_two_processes_train_agree_resume_exactly_and_checkpoint_evaluates_alike(tmp_path):
    # diff_rank_seed: each rank's dropout draws from a stream of its own.
    config = write_small_toy_config(
        tmp_path / "toy.py", epochs=2,
        extra="randomness = dict(seed=0, diff_rank_seed=True)\n"
              "custom_hooks = [dict(type='RandomStateHook'), dict(type='RankAgreementHook', interval=1)]\n")
    work = tmp_path / "dist"
    log = dist_train(config, work)
    assert "Distributed training: True" in log
    assert "Epoch(train) [1][2/2]" in log  # 96 videos shared by 2 ranks, batches of 32

    # Each iteration checked, plus the check at each epoch's end.
    assert "weights identical on all 2 ranks in 3 checks so far" in log
    assert "weights identical on all 2 ranks in 6 checks so far" in log

    # Rank 0 alone writes checkpoints, and they load with torch's default weights_only=True.
    assert sorted(f for f in os.listdir(work) if f.endswith(".pth")) == ["epoch_1.pth", "epoch_2.pth"]
    checkpoint = load_run_checkpoint(work / "epoch_2.pth")
    assert checkpoint["meta"]["iter"] == 4

    accuracy = [r["acc/top1"] for r in scalars(work) if "acc/top1" in r]
    assert len(accuracy) == 2
    single = run_tool("tools/test.py", str(config), str(work / "epoch_2.pth"),
                      "--work-dir", str(tmp_path / "single"))
    assert f"acc/top1: {accuracy[-1]:.4f}" in single, (accuracy, single[-2000:])

    # Stopped after epoch 1 and resumed: each rank gets its own streams back.
    part = tmp_path / "part"
    dist_train(config, part, "--cfg-options", "train_cfg.max_epochs=1")
    streams = load_run_checkpoint(part / "epoch_1.pth")["random_states"]
    assert len(streams) == 2 and not torch.equal(streams[0]["torch"], streams[1]["torch"])
    log = dist_train(config, part, "--resume")
    assert "resumed epoch: 1, iter: 2" in log
    whole, resumed = final_state(work), final_state(part)
    assert all(torch.equal(resumed[0][key], whole[0][key]) for key in whole[0])
    assert all(torch.equal(resumed[1][p][n], whole[1][p][n]) for p in whole[1] for n in whole[1][p])

    # One process resumes the two ranks' checkpoint: it restores what it can and says so.
    log = run_tool("tools/train.py", str(config), "--work-dir", str(tmp_path / "one"),
                   "--resume", str(part / "epoch_1.pth"))
    assert "holds the random states of 2 rank(s), this run has 1: ranks 0-0 continue" in log


def _in_process_group(rank, world_size, port, target, *args):
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                         rank=rank, world_size=world_size)
    try:
        target(rank, *args)
    finally:
        torch.distributed.destroy_process_group()


def spawn(target, *args, world_size=2):
    """Run ``target(rank, *args)`` in ``world_size`` gloo processes; re-raise their failures."""
    torch.multiprocessing.spawn(_in_process_group, args=(world_size, free_port(), target, *args),
                                nprocs=world_size)


def _drifted_rank(rank, results):
    from types import SimpleNamespace

    from cp_plugin.mmaction import RankAgreementHook

    torch.manual_seed(0)
    runner = SimpleNamespace(model=torch.nn.Linear(3, 2), iter=7)
    hook = RankAgreementHook(interval=1)
    hook.check(runner)  # identical: passes
    if rank == 1:
        with torch.no_grad():
            runner.model.bias[0] += 1e-7
    try:
        hook.check(runner)
    except RuntimeError as error:
        (results / f"rank{rank}.txt").write_text(str(error))


def test_rank_agreement_hook_fails_every_rank_on_a_drift(tmp_path):
    spawn(_drifted_rank, tmp_path)
    # Both ranks stop (rank 0 would otherwise wait for rank 1 at the next collective).
    assert "rank 0: 0 differ from rank 0" in (tmp_path / "rank0.txt").read_text()
    assert "rank 1: 1 differ from rank 0, e.g. ['bias']" in (tmp_path / "rank1.txt").read_text()


PAIR_WIDTHS = (6, 5, 4)  # the first layer's output (centre + neighbour), then two more layers


def _pair_embedding_problem(rows, k, seed=0):
    """centre, neighbour, index, layer weights, BN parameters and an output weighting."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.randn(rows, PAIR_WIDTHS[0], generator=gen, dtype=torch.float64)
    neighbour = torch.randn(rows, PAIR_WIDTHS[0], generator=gen, dtype=torch.float64)
    index = torch.randint(0, rows // 2, (rows, k), generator=gen)
    index[rows // 2:] += rows // 2  # each half (one rank's clips) pairs within itself
    weights = [None] + [torch.randn(o, i, generator=gen, dtype=torch.float64)
                        for i, o in zip(PAIR_WIDTHS[:-1], PAIR_WIDTHS[1:])]
    affine = [((torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
               * (torch.randint(0, 2, (c,), generator=gen) * 2 - 1),
               torch.randn(c, generator=gen, dtype=torch.float64) * 0.1) for c in PAIR_WIDTHS]
    weighting = torch.randn(rows, max(PAIR_WIDTHS), generator=gen, dtype=torch.float64)
    return centre, neighbour, index, weights, affine, weighting


def _run_pair_embedding(norm_type, rows, layers, recompute, part=slice(None)):
    """One training step of the pair embedding on ``part`` of the problem's rows."""
    from cp_plugin.pair_embedding import embed_pairs_max

    centre, neighbour, index, weights, affine, weighting = _pair_embedding_problem(rows, 5)
    centre, neighbour = (t[part].clone().requires_grad_(True) for t in (centre, neighbour))
    index = index[part] - (part.start or 0)  # rows of this part's own neighbour tensor
    weights = [None if w is None else w.requires_grad_(True) for w in weights[:layers]]
    norms = [norm_type(c).double() for c in PAIR_WIDTHS[:layers]]
    for norm, (gamma, beta) in zip(norms, affine):
        norm.weight.data, norm.bias.data = gamma.clone(), beta.clone()
    pooled = embed_pairs_max(centre, neighbour, index, weights, norms, recompute=recompute)
    (pooled * weighting[part, :pooled.shape[1]]).sum().backward()
    params = [w for w in weights if w is not None] + [p for n in norms for p in (n.weight, n.bias)]
    return dict(pooled=pooled.detach(), centre=centre.grad, neighbour=neighbour.grad,
                params=[p.grad for p in params],
                running=[t.clone() for n in norms for t in (n.running_mean, n.running_var)])


def _synced_rank(rank, rows, layers, recompute, results):
    from cp_plugin.measure import dispatched_ops

    half = rows // 2
    out = {}
    _, out["host_syncs"] = dispatched_ops(lambda: out.update(_run_pair_embedding(
        torch.nn.SyncBatchNorm, rows, layers, recompute, slice(rank * half, (rank + 1) * half))))
    torch.save(out, results / f"rank{rank}.pt")


@pytest.mark.parametrize("layers,recompute", [(3, True), (1, False)],
                         ids=["all-layers-fused", "last-layer-fused"])
def test_syncbn_pair_statistics_equal_one_process_on_the_whole_batch(tmp_path, layers, recompute):
    """With SyncBatchNorm, two ranks' fused pair embedding computes what one process computes on
    both ranks' points: same outputs and input gradients, parameter gradients that sum (as DDP
    reduces them) to the whole batch's, and the same running statistics. Forward and backward
    read no tensor on the host (a stall of a GPU's queue per BN)."""
    rows = 40
    spawn(_synced_rank, rows, layers, recompute, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["host_syncs"] for r in ranks] == [0, 0]
    whole = _run_pair_embedding(torch.nn.BatchNorm1d, rows, layers, recompute)
    # float64 sums over the layers' widths and each BN's rows * 5 pairs, in another order.
    length = sum(PAIR_WIDTHS) + layers * rows * 5
    for key in ("pooled", "centre", "neighbour"):
        assert_close_to_rounding(torch.cat([r[key] for r in ranks]), whole[key],
                                 reduction_length=length, msg=key)
    scale = max(float(g.abs().max()) for g in whole["params"])
    for got0, got1, expected in zip(ranks[0]["params"], ranks[1]["params"], whole["params"]):
        assert_close_to_rounding(got0 + got1, expected, reduction_length=length, magnitude=scale)
    for got0, got1, expected in zip(ranks[0]["running"], ranks[1]["running"], whole["running"]):
        assert_close_to_rounding(got0, expected, reduction_length=length)
        assert_close_to_rounding(got1, expected, reduction_length=length)


def test_mmengine_syncbn_conversion_keeps_cp_modules_working():
    """mmengine's sync_bn='torch' converts every BN, those inside CP modules included; outside a
    process group the converted model computes exactly what the plain one does."""
    import copy

    from mmengine.model import convert_sync_batchnorm

    from cp_plugin import CPModule

    torch.manual_seed(0)
    plain = randomise_norms(CPModule(8, k=3, bottleneck_channels=6, mlp_channels=(4, 5))).train()
    synced = convert_sync_batchnorm(copy.deepcopy(plain), "torch")
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == 4
    x = torch.randn(2, 8, 3, 4, 4)
    outputs = []
    for module in (plain, synced):
        inputs = x.clone().requires_grad_(True)
        out = module(inputs)
        out.square().sum().backward()
        outputs.append([out, inputs.grad, *(p.grad for p in module.parameters()), *module.buffers()])
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
