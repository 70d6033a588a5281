"""Whether the forward in progress is being traced by torch.export, for the CP paths that must
then avoid Python loops over sizes (they would fix N, T, H and W in the exported graph)."""
from __future__ import annotations

import torch


def exporting() -> bool:
    """True while ``torch.export`` (and so the ONNX exporter) traces; False on a torch too old
    to tell, whose exporter is not supported."""
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())
