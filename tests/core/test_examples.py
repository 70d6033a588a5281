"""The ``Examples::`` sections of the public modules' docstrings run and print what they say."""
import doctest
import importlib

import pytest

MODULES = ["cp_plugin.cp_module", "cp_plugin.reference", "cp_plugin.insertion", "cp_plugin.blocks",
           "cp_plugin.baselines.artnet", "cp_plugin.baselines.fused_nonlocal",
           "cp_plugin.mmaction.backbones", "cp_plugin.mmaction.neck", "cp_plugin.toy.mmaction",
           "timm_adapters.video", "cp_plugin.mmaction.timm_backbone", "cp_plugin.export"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    import cp_plugin.blocks

    module = importlib.import_module(name)  # first: importing fills the block table
    # An example may register a block class: keep the table as it was.
    monkeypatch.setattr(cp_plugin.blocks, "_TABLE", dict(cp_plugin.blocks._TABLE))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
