"""A training run killed hard (SIGKILL) resumes and ends exactly where an uninterrupted run does."""
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from test_tools import run_tool
from toy_runs import REPO, load_run_checkpoint, scalars, write_small_toy_config

pytestmark = pytest.mark.slow  # see setup.cfg: left out by make test-quick

EXTRA = "randomness = dict(seed=0, deterministic=True)\n"


def train(config, work, *flags):
    return run_tool("tools/train.py", str(config), "--work-dir", str(work), *flags)


def train_until_first_checkpoint_then_kill(config, work):
    process = subprocess.Popen([sys.executable, "tools/train.py", str(config), "--work-dir", str(work)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (work / "last_checkpoint").exists():
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL


def final_state(work):
    checkpoint = load_run_checkpoint(work / "epoch_3.pth")
    return checkpoint["state_dict"], checkpoint["optimizer"]["state"]


def assert_states_equal(a, b):
    assert a[0].keys() == b[0].keys()
    assert all(torch.equal(a[0][key], b[0][key]) for key in a[0])
    assert all(torch.equal(a[1][p][name], b[1][p][name]) for p in a[1] for name in a[1][p])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(config, work dir) of a 3-epoch run that nothing interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    config = write_small_toy_config(root / "toy.py", epochs=3, extra=EXTRA)
    train(config, root / "whole")
    return config, root / "whole"


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted):
    config, whole = uninterrupted

    killed = tmp_path / "killed"
    train_until_first_checkpoint_then_kill(config, killed)
    assert not (killed / "epoch_3.pth").exists()
    saved = load_run_checkpoint((killed / "last_checkpoint").read_text().strip())
    epoch, iteration = saved["meta"]["epoch"], saved["meta"]["iter"]
    assert "random_states" in saved

    log = train(config, killed, "--resume")
    assert f"resumed epoch: {epoch}, iter: {iteration}" in log
    losses = [record["loss"] for record in scalars(killed) if "loss" in record]
    assert len(losses) == 3 * (3 - epoch) and all(math.isfinite(loss) for loss in losses)
    assert_states_equal(final_state(killed), final_state(whole))


def test_without_the_random_states_the_resumed_run_differs(tmp_path, uninterrupted):
    """Why RandomStateHook is needed: dropout draws from the global stream."""
    config, whole = uninterrupted
    checkpoint = load_run_checkpoint(whole / "epoch_1.pth")
    del checkpoint["random_states"]
    partial = tmp_path / "partial"
    partial.mkdir()
    torch.save(checkpoint, partial / "epoch_1.pth")
    log = train(config, partial, "--resume", str(partial / "epoch_1.pth"))
    assert "the checkpoint holds no random states" in log
    a, b = final_state(partial), final_state(whole)
    assert not all(torch.equal(a[0][key], b[0][key]) for key in a[0])
