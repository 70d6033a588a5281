"""Point a shipped mmaction2 config at tiny local data and shrink it to run in seconds on a CPU.

Everything else (model, pipelines, test views, schedule types) stays as shipped, so a run still
exercises the config's own components end to end.
"""
import os

import torch

SCALE = 2 / 7  # 224 -> 64, 256 -> 73, 112 -> 32
MAX_TEST_CLIPS = 2


def _scaled(value):
    if isinstance(value, int):
        return value if value < 0 else max(8, round(value * SCALE))
    return tuple(_scaled(v) for v in value)


def shrink_pipeline(pipeline):
    for step in pipeline:
        for key in ("scale", "crop_size", "input_size"):
            if key in step and step["type"] != "RandomResizedCrop":
                step[key] = _scaled(step[key])
        # Fewer test clips; segment sampling (clip_len 1, TSN/TRN) keeps its segment count.
        if step["type"] == "SampleFrames" and step.get("test_mode") and step["clip_len"] > 1:
            step["num_clips"] = min(step["num_clips"], MAX_TEST_CLIPS)
    return pipeline


def point_at_data(loader, video_data, rawframe_data, split):
    dataset = loader["dataset"]
    if dataset["type"] == "RawframeDataset":
        root, prefix = rawframe_data, "img"
    else:
        root, prefix = video_data, "video"
    dataset["ann_file"] = str(root / f"{split}.txt")
    dataset["data_prefix"] = {prefix: str(root)}
    loader.update(num_workers=0, persistent_workers=False, batch_size=2 if split == "train" else 1)
    shrink_pipeline(dataset["pipeline"])


def replace_pretrained(node, imagenet_checkpoint):
    """Point every ImageNet ``pretrained`` path at a local torchvision-format checkpoint."""
    if isinstance(node, dict):
        if isinstance(node.get("pretrained"), str):
            node["pretrained"] = imagenet_checkpoint(node["depth"])
        for value in node.values():
            replace_pretrained(value, imagenet_checkpoint)
    elif isinstance(node, list):
        for value in node:
            replace_pretrained(value, imagenet_checkpoint)


def shrink_config(cfg, work_dir, video_data, rawframe_data, imagenet_checkpoint, validate=False):
    """Make ``cfg`` train one iteration and test one video, on the generated data, in work_dir;
    ``validate``: keep the config's validation, every epoch, on the test video."""
    cfg.work_dir = str(work_dir)
    point_at_data(cfg.train_dataloader, video_data, rawframe_data, "train")
    point_at_data(cfg.test_dataloader, video_data, rawframe_data, "test")
    if validate:
        point_at_data(cfg.val_dataloader, video_data, rawframe_data, "test")
    else:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1)
    cfg.randomness = dict(seed=0)
    replace_pretrained(cfg.model, imagenet_checkpoint)
    if cfg.get("load_from"):
        # A later training phase starts from the previous phase's weights: same architecture.
        from mmaction.registry import MODELS

        path = os.path.join(work_dir, "previous_phase.pth")
        torch.save({"state_dict": MODELS.build(cfg.model).state_dict()}, path)
        cfg.load_from = path
    return cfg
