"""``insert_cp``: CP modules after the residual add of chosen blocks of a timm model."""
from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Union

from torch import nn

from cp_plugin.cp_module import CP_OPTIONS, CPModule
from cp_plugin.insertion import find_blocks, insert_modules, split_block_entry
from cp_plugin.presets import CP_PRESETS, resolve_placement
from cp_plugin.validation import check_known_options

from . import catalogue  # noqa: F401  (enters timm's blocks in the block table)
from .probe import probe_blocks
from .video import ClipsAsFrames

BlockList = Union[str, Sequence[Union[str, Mapping]], None]


def candidate_blocks(model: nn.Module) -> List[str]:
    """Names of the blocks of ``model`` that can take CP: of a class the block table supports,
    and not refused as built (an EfficientNet block without its skip has no residual add;
    naming one in :func:`insert_cp` says why)."""
    return [name for name, block in find_blocks(model).items()
            if not (block.spec.check and block.spec.check(block.module))]


def insert_cp(model: nn.Module, blocks: BlockList, **cp_cfg) -> Dict[str, CPModule]:
    """Put a :class:`cp_plugin.CPModule` after the residual add of each named block.

    Args:
        model: a timm model (classifier or ``features_only``), modified in place; or a
            :class:`timm_adapters.VideoModel`, whose image model is.
        blocks: a preset name (``'resnet18'``, ``'resnet18-6cp'``, ``'resnet34'``,
            ``'resnet50'``, ``'resnet101'``: the authors' placements), or a list of block names
            such as ``'layer3.1'`` (``'s3.b2'`` in RegNets), each possibly
            ``dict(block=name, **options)`` with options for that block only.
        **cp_cfg: CPModule options for every module (``k``, ``mlp_channels``,
            ``bottleneck_channels``, ``shrink``, ``knn_chunk_size``), over the preset's defaults;
            per-block options win over both.

    Returns:
        The inserted modules by block name, on the device and in the dtype of the model's
        parameters. Their state-dict keys are ``<block>.<activation>.module.*``; the block's own
        keys do not change.

    Raises:
        UnsupportedBlockError: a named block cannot take CP (shared or missing final activation,
            no residual add); the model is left unchanged.

    The inserted modules see (N*T, C, H, W) frames and split them into clips using the layout
    that :class:`timm_adapters.VideoModel` puts in scope for each of its forward calls.
    """
    if isinstance(model, ClipsAsFrames):  # a VideoModel: insert into its image model
        model = model.backbone
    entries, defaults = resolve_placement(blocks, CP_PRESETS, "blocks")
    for entry in entries:  # every option checked before any block is looked at
        check_known_options("insert_cp", {**defaults, **cp_cfg, **split_block_entry(entry)[1]},
                            CP_OPTIONS)
    reference = next(model.parameters(), None)
    factory = {} if reference is None else dict(device=reference.device, dtype=reference.dtype)

    def build(channels: int, overrides: dict) -> CPModule:
        return CPModule(channels, **{**defaults, **cp_cfg, **overrides}, **factory)

    sites = insert_modules(model, entries, build, "before_activation", probe=probe_blocks,
                           what="a CP module")
    return {site.block_name: site.module for site in sites}
