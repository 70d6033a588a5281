"""Distributed runs on machines without a GPU: gloo instead of nccl, DDP without device ids."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from mmengine.config import Config


def use_cpu_distributed(cfg: Config) -> bool:
    """Prepare ``cfg`` and the process group for a CPU-only ``pytorch`` launch; True if it did.

    mmengine's launcher calls ``torch.cuda.set_device`` and its DDP wrapper passes the local
    rank as a device id, both of which fail without a GPU. So the gloo process group is set up
    here (mmengine then keeps it) and DDP gets ``device_ids=None``, as it needs for CPU modules.
    """
    if cfg.get("launcher", "none") != "pytorch" or torch.cuda.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", rank=int(os.environ["RANK"]),
                                world_size=int(os.environ["WORLD_SIZE"]))
    cfg.env_cfg.setdefault("dist_cfg", {})["backend"] = "gloo"
    wrapper = cfg.get("model_wrapper_cfg") or dict(type="MMDistributedDataParallel",
                                                   broadcast_buffers=False)
    if wrapper.get("type", "MMDistributedDataParallel") == "MMDistributedDataParallel":
        wrapper["device_ids"] = None
    cfg.model_wrapper_cfg = wrapper
    return True
