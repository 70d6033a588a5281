"""Wrappers that are invisible in state dicts, so checkpoints of the wrapped model load as they are.

A video wrapper holds the image or 2D model as its child ``backbone``, and a site after a block
that ends with its residual add holds that block as its child ``activation``. With these hooks
the wrapper's state dict has the child's keys under the wrapper's own prefix
(``layer1.0.conv1.weight``, not ``backbone.layer1.0.conv1.weight``), it loads either form, and
missing or unexpected keys are reported under the plain names.
"""
from __future__ import annotations

from functools import partial
from typing import Iterator, Tuple

from torch import nn


def _drop_child_prefix(child, module, state_dict, prefix, local_metadata):
    inner = prefix + child
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        state_dict[prefix + key[len(inner):] if key.startswith(inner) else key] = value


def _add_child_prefix(child, module, state_dict, prefix, *args):
    module._state_dict_load_prefix = prefix  # the post-hook below is not told the prefix
    for key in [k for k in state_dict if k.startswith(prefix)]:
        local = key[len(prefix):]
        if not key.startswith(prefix + child) and not _owned_elsewhere(module, local, child):
            state_dict[prefix + child + local] = state_dict.pop(key)


def _owned_elsewhere(module, key, child) -> bool:
    """Whether ``key`` belongs to one of ``module``'s other children (a site's ``module``)."""
    head = key.split(".", 1)[0]
    return head in module._modules and head + "." != child


def _report_plain_names(child, module, incompatible_keys):
    inner = getattr(module, "_state_dict_load_prefix", "") + child
    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [k.replace(inner, inner[:-len(child)], 1) if k.startswith(inner) else k
                   for k in keys]


def hide_child_in_state_dict(module: nn.Module, child: str = "backbone") -> None:
    """Show ``module.<child>``'s entries under ``module``'s own prefix in state dicts."""
    if not isinstance(getattr(module, child, None), nn.Module):
        raise TypeError(f"{type(module).__name__} has no {child!r} submodule to hide")
    prefix = child + "."
    module._state_dict_hidden_child = child
    module.register_state_dict_post_hook(partial(_drop_child_prefix, prefix))
    module.register_load_state_dict_pre_hook(partial(_add_child_prefix, prefix))
    module.register_load_state_dict_post_hook(partial(_report_plain_names, prefix))


def state_dict_prefixes(model: nn.Module) -> Iterator[Tuple[str, nn.Module]]:
    """Every submodule of ``model`` with the prefix its entries have in ``model``'s state dict
    (``named_modules`` names, less the children hidden above)."""
    def walk(module: nn.Module, prefix: str):
        yield prefix, module
        hidden = getattr(module, "_state_dict_hidden_child", None)
        for name, child in module._modules.items():
            if child is not None:
                yield from walk(child, prefix if name == hidden else f"{prefix}{name}.")

    yield from walk(model, "")
