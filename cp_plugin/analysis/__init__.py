"""Looking inside trained CP modules: what they propose (the paper's Figure 5) and what they cost.

- :mod:`.proposals`: the k proposals of a point and which of them the max keeps.
- :mod:`.cost`: multiply-accumulates and memory of a CP module, by formula.
"""
from .cost import cp_module_cost
from .proposals import Proposals, inspect_proposals

__all__ = ["Proposals", "cp_module_cost", "inspect_proposals"]
