"""Export a video model with CP modules: ``torch.export`` and ONNX, with N, T (and H, W) dynamic.

While ``torch.export`` traces, the CP module takes loop-free paths: the neighbour search as one
(N, P, P) score matrix with each query's own frame masked out, and the pair MLP as plain ops.
Their results are those of the eager paths; the chunked eager paths loop in Python over frames
and chunks, which would fix T, H and W in the graph. The search runs in float32, as in eager.

Examples::

    >>> from cp_plugin import CPModule
    >>> program = export_program(CPModule(16, k=4).eval(), torch.randn(1, 16, 4, 8, 8))
    >>> program.module()(torch.randn(3, 16, 6, 8, 8)).shape  # another N and T
    torch.Size([3, 16, 6, 8, 8])
"""
from __future__ import annotations

import importlib
from typing import Dict, List, Sequence

import torch
from torch import nn
from torch.export import Dim

from .validation import check_clips, input_channels

__all__ = ["DYNAMIC_DIMS", "clip_dynamic_shapes", "export_program", "export_onnx",
           "onnx_difference", "shapes_to_check"]

#: Which dims of a (N, C, T, H, W) input can be dynamic: batch (N), frames (T), size (H and W).
DYNAMIC_DIMS = ("batch", "frames", "size")
#: Largest dynamic batch: CUDA kernels in the graph guard on a batch of at most 65535 (a grid
#: dimension), so an unbounded batch dim fails to export from a GPU.
MAX_BATCH = 65535


def clip_dynamic_shapes(dynamic: Sequence[str] = ("batch", "frames"), min_size: int = 64,
                        min_frames: int = 2) -> Dict[int, Dim]:
    """``dynamic_shapes`` entry for one (N, C, T, H, W) input: the named dims symbolic.

    T >= ``min_frames`` and H, W >= ``min_size``: sizes at which every CP module still has its
    k candidates in the other frames, k <= (T-1)*H'*W' on its feature map. At 64 x 64 a
    ResNet's res4 map is 4 x 4, so k=8 needs T >= 2 there, but res5's 2 x 2 needs T >= 3;
    torch.export names the bound it needs when one is too low.
    """
    unknown = sorted(set(dynamic) - set(DYNAMIC_DIMS))
    if unknown:
        raise ValueError(f"dynamic names unknown dims {unknown}; choose from {DYNAMIC_DIMS}")
    if min_size < 1:
        raise ValueError(f"min_size must be >= 1, got {min_size}")
    if min_frames < 2:
        raise ValueError(f"min_frames must be >= 2 (CP needs other frames), got {min_frames}")
    dims: Dict[int, Dim] = {}
    if "batch" in dynamic:
        dims[0] = Dim("batch", min=1, max=MAX_BATCH)
    if "frames" in dynamic:
        dims[2] = Dim("frames", min=min_frames)
    if "size" in dynamic:
        dims[3], dims[4] = Dim("height", min=min_size), Dim("width", min=min_size)
    return dims


def _check_example(model: nn.Module, example: torch.Tensor) -> None:
    check_clips(example, "example", "export", input_channels(model))
    if model.training:
        raise ValueError("export the model in eval mode (model.eval()): in training mode its "
                         "BatchNorms would export batch statistics")


def export_program(model: nn.Module, example: torch.Tensor,
                   dynamic: Sequence[str] = ("batch", "frames"), min_size: int = 64,
                   min_frames: int = 2) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` on clips like ``example``, ``dynamic`` dims symbolic
    (see :func:`clip_dynamic_shapes`)."""
    _check_example(model, example)
    if "batch" in dynamic and example.shape[0] == 1:
        # torch.export fixes any dim that is 1 in the example: trace on two clips.
        example = example.expand(2, *example.shape[1:])
    shapes = (clip_dynamic_shapes(dynamic, min_size, min_frames),)  # for the one positional input
    return torch.export.export(model, (example,), dynamic_shapes=shapes, strict=False)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str,
                dynamic: Sequence[str] = ("batch", "frames"), min_size: int = 64,
                min_frames: int = 2, output_name: str = "scores") -> str:
    """Write ``model`` as ONNX (torch's dynamo exporter) with input ``clips`` (N, C, T, H, W),
    ``dynamic`` dims symbolic, and output ``output_name``; returns ``path``."""
    _require("onnxscript")  # before the trace, which takes a while
    program = export_program(model, example, dynamic, min_size, min_frames)
    onnx_program = torch.onnx.export(program, dynamo=True, input_names=["clips"],
                                     output_names=[output_name], verbose=False)
    onnx_program.save(path)
    return path


def shapes_to_check(shape: Sequence[int], dynamic: Sequence[str]) -> List[tuple]:
    """The traced clip shape, and shapes that change each of its ``dynamic`` dims: the inputs
    on which :func:`onnx_difference` shows the graph kept them symbolic."""
    n, c, t, h, w = shape
    shapes = [tuple(shape)]
    if "batch" in dynamic or "frames" in dynamic:
        shapes.append((n + 1 if "batch" in dynamic else n, c,
                       t + 2 if "frames" in dynamic else t, h, w))
    if "size" in dynamic:
        shapes.append((n, c, t, h + 32, w + 16))
    return shapes


def onnx_difference(path: str, model: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Largest absolute difference between onnxruntime's outputs for ``path`` and ``model``'s
    eager outputs over ``inputs`` (clips of any allowed shape)."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for clips in inputs:
        with torch.no_grad():
            expected = model(clips)
        got = torch.from_numpy(session.run(None, {name: clips.numpy()})[0])
        if got.shape != expected.shape:
            raise ValueError(f"onnxruntime gave shape {tuple(got.shape)} for clips "
                             f"{tuple(clips.shape)}, eager {tuple(expected.shape)}")
        worst = max(worst, float((got - expected).abs().max()))
    return worst


def _require(package: str):
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise ImportError(f"ONNX export needs {package} ({error}); install the export extra: "
                          f"pip install \"cp-plugin[export]\"") from error
