"""Export: torch.export and ONNX (onnxruntime) of timm and mmaction2 CPNets, N, T, H, W dynamic."""
import copy
import os

import pytest
import torch

import cp_plugin.mmaction  # noqa: F401  (before mmaction2: repairs its install, registers our modules)
import timm
import timm_adapters  # noqa: F401  (registers cpnet_*)
from cp_plugin.export import clip_dynamic_shapes, export_program
from cp_plugin.insertion import insertion_sites
from cp_plugin.testing import assert_float32_like, assert_same_in_float64

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CPNET_R18 = os.path.join(REPO, "mmaction_configs", "kinetics400", "cpnet_r18_8x4_kinetics400.py")


def activate_cp(model, seed=0):
    """CP modules that change their input, by a modest amount (scores stay of order 1-10)."""
    gen = torch.Generator().manual_seed(seed)
    for site in insertion_sites(model):
        norm = site.module.out_norm
        with torch.no_grad():
            norm.weight.copy_(0.5 * torch.randn(norm.weight.shape, generator=gen))
    return model.eval()


def random_clips(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def timm_cpnet():
    torch.manual_seed(0)
    return activate_cp(timm.create_model("cpnet_resnet18", num_classes=7))


def test_torch_export_keeps_batch_frames_and_size_symbolic():
    """Eager and exported, both in float64, at shapes other than the traced one."""
    model = timm_cpnet().double()
    program = export_program(model, random_clips(1, 3, 4, 64, 64).double(),
                             dynamic=("batch", "frames", "size"))
    exported = program.module()
    plain = timm.create_model("resnet18", num_classes=7).eval().double()
    plain.load_state_dict(model.state_dict(), strict=False)
    for i, shape in enumerate([(2, 3, 4, 64, 64), (1, 3, 3, 96, 80), (3, 3, 9, 64, 64)]):
        x = random_clips(*shape, seed=i).double()
        with torch.no_grad():
            assert_same_in_float64(exported(x), model(x))
    # CP is in the graph: the exported model is not the plain C2D.
    with torch.no_grad(), pytest.raises(AssertionError):
        c2d = plain(x.transpose(1, 2).flatten(0, 1)).view(3, 9, 7).mean(1)
        assert_same_in_float64(exported(x), c2d)


def test_export_refuses_what_it_cannot_export():
    model = timm_cpnet()
    with pytest.raises(ValueError, match=r"example must be clips \(N, C, T, H, W\), got 4 dims "
                                         r"\(4, 3, 64, 64\)"):
        export_program(model, torch.zeros(4, 3, 64, 64))
    with pytest.raises(ValueError, match=r"looks like clips in \(N, T, C, H, W\) order"):
        export_program(model, torch.zeros(1, 4, 3, 64, 64))
    with pytest.raises(ValueError, match="dynamic names unknown dims \\['time'\\]"):
        clip_dynamic_shapes(["batch", "time"])
    model.train()
    with pytest.raises(ValueError, match=r"eval mode \(model.eval\(\)\)"):
        export_program(model, torch.zeros(1, 3, 4, 64, 64))


def check_in_onnxruntime(path, model, shapes, scores=lambda model, x: model(x)):
    """onnxruntime runs the graph in float32 only (it has no float64 convolution): at each
    shape its scores must be as close to the float64 eager scores as float32 eager PyTorch's
    own are, within FLOAT32_ORDER_MARGIN (cp_plugin.testing.assert_float32_like)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    twin = copy.deepcopy(model).double()
    for i, shape in enumerate(shapes):
        x = random_clips(*shape, seed=i)
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        with torch.no_grad():
            assert_float32_like(got, scores(model, x), scores(twin, x.double()), msg=str(shape))


def graph_input_dims(path):
    import onnx

    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


@pytest.mark.slow
def test_timm_cpnet_onnx_runs_in_onnxruntime_at_other_shapes(tmp_path):
    from tools import export_onnx

    checkpoint = tmp_path / "cpnet.pth"
    model = timm_cpnet()
    torch.save(model.state_dict(), checkpoint)
    out = str(tmp_path / "cpnet.onnx")
    result = export_onnx.main(["--timm-model", "cpnet_resnet18", "--num-classes", "7",
                               "--timm-checkpoint", str(checkpoint), "--shape", "1", "3", "4",
                               "64", "64", "--dynamic", "batch", "frames", "size",
                               "--out", out])
    assert len(result["shapes"]) == 3 and result["difference"] > 0
    check_in_onnxruntime(out, model, result["shapes"])
    dims = graph_input_dims(out)
    assert dims[1] == 3 and all(isinstance(d, str) for d in dims[:1] + dims[2:]), dims


@pytest.mark.slow
def test_mmaction_cpnet_r18_onnx_runs_in_onnxruntime(tmp_path):
    from cp_plugin.mmaction.deploy import ClipRecognizer, load_recognizer
    from tools import export_onnx

    torch.manual_seed(0)
    recognizer = activate_cp(load_recognizer(CPNET_R18))
    checkpoint = str(tmp_path / "epoch_1.pth")
    torch.save(dict(state_dict=recognizer.state_dict(), meta=dict(epoch=1)), checkpoint)
    out = str(tmp_path / "cpnet_r18.onnx")
    # At 64 x 64, res5's 2 x 2 map has k=8 candidates only from T >= 3.
    result = export_onnx.main([CPNET_R18, checkpoint, "--shape", "1", "3", "4", "64", "64",
                               "--min-frames", "3", "--out", out])
    assert result["shapes"] == [(1, 3, 4, 64, 64), (2, 3, 6, 64, 64)]
    check_in_onnxruntime(out, recognizer, result["shapes"],
                         lambda model, x: ClipRecognizer(model)(x))
    dims = graph_input_dims(out)
    assert isinstance(dims[0], str) and isinstance(dims[2], str) and dims[3:] == [64, 64]
    # The graph's scores are the recognizer's own head scores for one view (float64).
    x = random_clips(2, 3, 4, 64, 64).double()
    recognizer.double()
    with torch.no_grad():
        own = recognizer(x.unsqueeze(1), mode="tensor", stage="head")
        assert_same_in_float64(ClipRecognizer(recognizer)(x), own)


def test_recognizer2d_takes_the_frames_as_segments_and_exports():
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    from cp_plugin.mmaction.deploy import ClipRecognizer

    init_default_scope("mmaction")
    torch.manual_seed(0)
    recognizer = activate_cp(MODELS.build(dict(
        type="Recognizer2D",
        backbone=dict(type="CPBackbone", backbone=dict(type="ResNet", depth=18, pretrained=None),
                      cp_blocks=["layer3.1"], cp_cfg=dict(k=4), num_segments=4),
        cls_head=dict(type="TSNHead", num_classes=5, in_channels=512),
        data_preprocessor=dict(type="ActionDataPreprocessor", format_shape="NCHW"))))
    model = ClipRecognizer(recognizer).eval().double()
    x = random_clips(2, 3, 4, 64, 64).double()  # (N, C, T, H, W): T = the 4 segments
    with torch.no_grad():
        own = recognizer(x.transpose(1, 2).contiguous(), mode="tensor", stage="head")
        assert_same_in_float64(model(x), own)
    # num_segments fixes T in this backbone: the batch stays dynamic.
    program = export_program(model, x, dynamic=("batch",)).module()
    y = random_clips(3, 3, 4, 64, 64, seed=1).double()
    with torch.no_grad():
        assert_same_in_float64(program(y), model(y))
    with pytest.raises(TypeError, match="Recognizer2D or Recognizer3D, got Linear"):
        ClipRecognizer(torch.nn.Linear(2, 2))
