"""`make demo`'s front end: one progress bar per network, logs in the work dir, table and plots."""
import glob
import json
import os

import pytest

pytestmark = pytest.mark.slow  # trains (two epochs of the smallest network)


def test_demo_shows_progress_keeps_logs_and_writes_table_and_pictures(tmp_path, capsys):
    from tools import toy_demo

    work_dir = str(tmp_path / "toy")
    results = toy_demo.main(["--models", "C2D", "--max-epochs", "2", "--work-dir", work_dir])
    out, err = capsys.readouterr()
    terminal = out + err
    # The bar, with epoch, loss and validation accuracy; no mmengine log lines.
    assert "C2D" in terminal and "epoch 2/2" in terminal and "loss " in terminal
    assert "val 25.0%" in terminal and "64/64" in terminal
    assert "mmengine - INFO" not in terminal and "np.float64" not in terminal
    # mmengine's log, and everything it printed, stay in the network's work dir.
    console = open(os.path.join(work_dir, "C2D", "console.log")).read()
    assert "Epoch(train)" in console
    assert glob.glob(os.path.join(work_dir, "C2D", "*", "*.log"))
    # The table in percent, the curves per epoch, the pictures.
    table = open(os.path.join(work_dir, "table1.md")).read()
    assert "| C2D | 25.0 | 25.0 | - | - |" in table
    saved = json.load(open(os.path.join(work_dir, "table1.json")))["C2D"]
    assert len(saved["epoch_loss"]) == 2 and saved["epoch_val_acc"] == [0.25, 0.25]
    assert results["C2D"]["val_acc"] == 0.25
    for picture in ("table1.png", "curves.png"):
        assert os.path.getsize(os.path.join(work_dir, picture)) > 10_000
