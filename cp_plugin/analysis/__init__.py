"""Looking inside trained CP modules: what they propose (the paper's Figure 5) and what they cost.

- :mod:`.proposals`: the k proposals of a point and which of them the max keeps.
- :mod:`.cost`: multiply-accumulates and memory of a CP module, by formula.
- :mod:`.figure`: the paper's Figure 5 drawn for a model and one sample (needs matplotlib).
"""
from .cost import cp_module_cost
from .figure import visualize_proposals
from .proposals import Proposals, inspect_proposals

__all__ = ["Proposals", "cp_module_cost", "inspect_proposals", "visualize_proposals"]
