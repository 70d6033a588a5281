"""Wrappers that are invisible in state dicts, so checkpoints of the wrapped model load as they are.

A video wrapper holds the image or 2D model as its child ``backbone``; with these hooks its
state dict has the child's keys under the wrapper's own prefix (``layer1.0.conv1.weight``, not
``backbone.layer1.0.conv1.weight``), it loads either form, and missing or unexpected keys are
reported under the plain names.
"""
from __future__ import annotations

from torch import nn

_CHILD = "backbone."


def _drop_child_prefix(module, state_dict, prefix, local_metadata):
    inner = prefix + _CHILD
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        state_dict[prefix + key[len(inner):] if key.startswith(inner) else key] = value


def _add_child_prefix(module, state_dict, prefix, *args):
    module._state_dict_load_prefix = prefix  # the post-hook below is not told the prefix
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if not key.startswith(prefix + _CHILD):
            state_dict[prefix + _CHILD + key[len(prefix):]] = state_dict.pop(key)


def _report_plain_names(module, incompatible_keys):
    inner = getattr(module, "_state_dict_load_prefix", "") + _CHILD
    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [k.replace(inner, inner[:-len(_CHILD)], 1) if k.startswith(inner) else k
                   for k in keys]


def hide_backbone_in_state_dict(module: nn.Module) -> None:
    """Show ``module.backbone``'s entries under ``module``'s own prefix in state dicts."""
    if not isinstance(getattr(module, "backbone", None), nn.Module):
        raise TypeError(f"{type(module).__name__} has no 'backbone' submodule to hide")
    module.register_state_dict_post_hook(_drop_child_prefix)
    module.register_load_state_dict_pre_hook(_add_child_prefix)
    module.register_load_state_dict_post_hook(_report_plain_names)
