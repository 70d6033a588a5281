"""The ``Examples::`` sections of the public modules' docstrings run and print what they say."""
import doctest
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def modules_with_examples():
    """Every module of the two packages with a ``>>>`` line that runs (not ``+SKIP``, for want of
    a checkpoint file): none is left out."""
    for package in ("cp_plugin", "timm_adapters"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if any(">>> " in line and "+SKIP" not in line for line in path.read_text().splitlines()):
                yield ".".join(path.relative_to(ROOT).with_suffix("").parts)


MODULES = list(modules_with_examples())


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    import cp_plugin.blocks

    module = importlib.import_module(name)  # first: importing fills the block table
    # An example may register a block class: keep the table as it was.
    monkeypatch.setattr(cp_plugin.blocks, "_TABLE", dict(cp_plugin.blocks._TABLE))
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
