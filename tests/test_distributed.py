"""Two-process CPU training through tools/dist_train.sh (torchrun, gloo, mmengine's launcher)."""
import os
import socket
import subprocess
import sys

import torch

from test_tools import run_tool
from toy_runs import REPO, scalars, write_small_toy_config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_agree_and_checkpoint_evaluates_alike(tmp_path):
    config = write_small_toy_config(
        tmp_path / "toy.py", epochs=2,
        extra="custom_hooks = [dict(type='RandomStateHook'), dict(type='RankAgreementHook', interval=1)]\n")
    work = tmp_path / "dist"
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    result = subprocess.run(["bash", "tools/dist_train.sh", str(config), "2", "--work-dir", str(work)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert "Distributed training: True" in log
    assert "Epoch(train) [1][2/2]" in log  # 96 videos shared by 2 ranks, batches of 32

    # Each iteration checked, plus the check at each epoch's end.
    assert "weights identical on all 2 ranks in 3 checks so far" in log
    assert "weights identical on all 2 ranks in 6 checks so far" in log

    # Rank 0 alone writes checkpoints, and they load with torch's default weights_only=True.
    assert sorted(f for f in os.listdir(work) if f.endswith(".pth")) == ["epoch_1.pth", "epoch_2.pth"]
    checkpoint = torch.load(work / "epoch_2.pth")
    assert checkpoint["meta"]["iter"] == 4

    accuracy = [r["acc/top1"] for r in scalars(work) if "acc/top1" in r]
    assert len(accuracy) == 2
    single = run_tool("tools/test.py", str(config), str(work / "epoch_2.pth"),
                      "--work-dir", str(tmp_path / "single"))
    assert f"acc/top1: {accuracy[-1]:.4f}" in single, (accuracy, single[-2000:])


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

    from cp_plugin.mmaction_plugin import RankAgreementHook

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
