"""A small toy CPNet training config for the run-level tests (distributed, kill and resume)."""
import json
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TOY_CPNET = os.path.join(REPO, "mmaction_configs", "toy", "cpnet_toy.py")


def write_small_toy_config(path, epochs=3, extra=""):
    """The shipped toy CPNet on 96 training and 64 validation videos, logging every iteration.

    Head dropout is switched on so that the global random stream matters to the weights.
    """
    path.write_text(f"""_base_ = [{TOY_CPNET!r}]
train_dataloader = dict(dataset=dict(num_videos=96))
val_dataloader = dict(batch_size=32, dataset=dict(num_videos=64))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs})
model = dict(cls_head=dict(dropout_ratio=0.5))
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(max_keep_ckpts=-1))
{extra}""")
    return path


def scalars(work_dir):
    """The records of the run's vis_data/scalars.json (the last run in work_dir)."""
    runs = sorted(d for d in os.listdir(work_dir) if os.path.isdir(os.path.join(work_dir, d, "vis_data")))
    with open(os.path.join(work_dir, runs[-1], "vis_data", "scalars.json")) as f:
        return [json.loads(line) for line in f]


def load_run_checkpoint(path):
    """A Runner checkpoint, read with torch's weights_only check and mmengine's classes allowed
    for this load only (as WeightsOnlyRunner reads it)."""
    import torch

    from cp_plugin.mmaction.compat import mmengine_checkpoints_allowed

    with mmengine_checkpoints_allowed():
        return torch.load(path, weights_only=True)
