"""Figure 5 (cp_plugin.analysis.visualize_proposals and its tool): the A(i0) sets drawn, against a
brute-force computation."""
import functools
import os

import matplotlib.image
import pytest
import torch
from mmengine.config import Config

import cp_plugin.mmaction  # noqa: F401  (registers our modules)
from cp_plugin import CPModule
from cp_plugin.analysis import visualize_proposals
from cp_plugin.analysis.figure import capture_input, input_frames
from cp_plugin.layout import frame_coordinates
from cp_plugin.testing import search_rounding_bound
from cp_plugin.mmaction.deploy import load_recognizer, recognizer_sample
from shrink import shrink_config
from tools import visualize_proposals as tool

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
TOY_CPNET = os.path.join(REPO, "mmaction_configs", "toy", "cpnet_toy.py")
CPNET_R18 = os.path.join(REPO, "mmaction_configs", "kinetics400", "cpnet_r18_8x4_kinetics400.py")


def brute_force(module: CPModule, video: torch.Tensor, query: int, proposals):
    """For one point of clip 0: the k smallest other-frame distances, those of ``proposals``,
    and which proposals are in A(i0), pair by pair from the module's layers."""
    module.eval()
    with torch.no_grad():
        points, grid = module.search_points(video[:1])
        f = points[0]
        coords = frame_coordinates(*grid)
        frame = torch.arange(f.shape[0]) // (grid[1] * grid[2])
        distances = (f.double() - f[query].double()).pow(2).sum(-1)  # float64: the truth
        distances[frame == frame[query]] = float("inf")
        smallest = distances.topk(module.k, largest=False).values
        embedded = []
        for j in proposals:
            x = torch.cat([coords[j] - coords[query], f[query], f[j]])[None]
            for linear, norm, act in module.mlp:
                x = act(norm(linear(x)))
            embedded.append(x[0])
        embedded = torch.stack(embedded)  # (k, C_last)
        best = embedded.max(0).values
        kept = [bool(((row == best) & (best > 0)).any()) for row in embedded]
    return smallest, distances[proposals].sort().values, kept


def checkpoint_of(cfg, path, seed=0):
    """A checkpoint of ``cfg``'s model whose CP modules change the features (output BN != 0)."""
    torch.manual_seed(seed)  # before building: the weights must not depend on earlier tests
    model = load_recognizer(cfg)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "out_norm.weight" in name:
                param.uniform_(0.5, 1.5)
    torch.save({"state_dict": model.state_dict()}, path)
    return str(path)


def check_drawing(result, model, run, png):
    """A(i0) and the proposals equal the brute force; the PNG holds the frames, red arrows, and
    blue ones exactly when some proposal is discarded. Returns whether one was."""
    module = dict(model.named_modules())[result["module"]]
    video = capture_input(module, run)
    grid = result["grid"]
    with torch.no_grad():
        bound = search_rounding_bound(module.search_points(video[:1])[0])
    for query, proposals, kept in zip(result["queries"], result["proposals"], result["kept"]):
        t, h, w = query
        as_index = [(pt * grid[1] + ph) * grid[2] + pw for pt, ph, pw in proposals]
        smallest, chosen, expected_kept = brute_force(module, video, (t * grid[1] + h) * grid[2] + w,
                                                      as_index)
        # The k nearest (by distance: equal distances may be broken either way), other frames.
        torch.testing.assert_close(chosen, smallest, rtol=0, atol=bound)
        assert kept == expected_kept
    assert any(any(k) for k in result["kept"])  # something red
    discarded = not all(all(k) for k in result["kept"])
    image = matplotlib.image.imread(png)[..., :3]
    assert image.shape[0] > 300 and image.std() > 0.05
    image = image[:image.shape[0] // 2]  # the frames and arrows (the legend is at the bottom)
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.2) & (image[..., 2] < 0.2)
    blue = (image[..., 2] > 0.8) & (image[..., 0] < 0.3)
    # A short arrow (a proposal next to the query's position) is a few pixels and its head.
    assert red.sum() > 20 and (blue.sum() > 5) == discarded
    return discarded


def test_toy_cpnet_checkpoint(tmp_path):
    cfg = Config.fromfile(TOY_CPNET)
    checkpoint = checkpoint_of(cfg, tmp_path / "toy.pth")
    png = str(tmp_path / "toy.png")
    result = tool.main([TOY_CPNET, checkpoint, "--toy-index", "3", "--out", png,
                        "--num-queries", "4"])
    assert result["module"] == "backbone.layers.1" and len(result["queries"]) == 4
    model = load_recognizer(TOY_CPNET, checkpoint)
    run, _ = recognizer_sample(model, toy_index=3)
    assert check_drawing(result, model, run, png)  # with k=4 of 32 channels, some lose all


def test_mmaction_cpnet_r18_on_a_generated_video(tmp_path, video_data, rawframe_data,
                                                 imagenet_checkpoint):
    cfg = shrink_config(Config.fromfile(CPNET_R18), tmp_path / "work", video_data, rawframe_data,
                        imagenet_checkpoint)
    config = tmp_path / "cpnet_r18.py"
    cfg.dump(str(config))
    checkpoint = checkpoint_of(cfg, tmp_path / "r18.pth")
    png = str(tmp_path / "r18.png")
    module = "backbone.backbone.layer2.0.relu.module"  # res3: x2 shrink before the search
    result = tool.main([str(config), checkpoint, "--video", str(video_data / "clip_1.mp4"),
                        "--module", module, "--query", "3", "1", "2", "--query", "0", "0", "0",
                        "--out", png])
    assert result["queries"] == [(3, 1, 2), (0, 0, 0)]
    model = load_recognizer(str(config), checkpoint)
    run, _ = recognizer_sample(model, video=str(video_data / "clip_1.mp4"))
    check_drawing(result, model, run, png)


def test_bad_requests(tmp_path):
    cfg = Config.fromfile(TOY_CPNET)
    model = load_recognizer(cfg)
    run, frames = recognizer_sample(model, toy_index=0)
    with pytest.raises(ValueError, match=r"no CP module named 'layer9'; this model's are: backbone.layers.1"):
        visualize_proposals(model, run, frames, str(tmp_path / "x.png"), module="layer9")
    with pytest.raises(ValueError, match=r"query \(4, 0, 0\) is outside the search grid"):
        visualize_proposals(model, run, frames, str(tmp_path / "x.png"), queries=[(4, 0, 0)])
    with pytest.raises(FileNotFoundError, match="video 'missing.mp4' does not exist"):
        recognizer_sample(model, video="missing.mp4")


def test_timm_cpnet_on_a_video_file(tmp_path, video_data):
    import timm

    import timm_adapters

    torch.manual_seed(0)
    model = timm.create_model("cpnet_resnet18")
    checkpoint = tmp_path / "timm.pth"
    torch.save(model.state_dict(), checkpoint)
    png = str(tmp_path / "timm.png")
    video = str(video_data / "clip_2.mp4")
    result = tool.main(["--timm-model", "cpnet_resnet18", "--timm-checkpoint", str(checkpoint),
                        "--video", video, "--num-frames", "4", "--out", png])
    assert result["module"].endswith("layer3.1.act2.module") and result["grid"] == (4, 14, 14)
    model.load_state_dict(torch.load(checkpoint))
    clip, _ = timm_adapters.clip_from_video(model.eval(), video, 4)
    run = functools.partial(model, clip)
    check_drawing(result, model, run, png)


def test_figure_reads_on_its_own(tmp_path):
    """Which input frames each panel stands for, and a warning for a module that is still the
    identity (as one freshly inserted: its output BN at zero), in the picture's title and as a
    warning."""
    assert input_frames(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert input_frames(4, 8) == [(0, 1), (2, 3), (4, 5), (6, 7)]  # time pooled by 2
    assert input_frames(2, 5) == [(0, 1), (2, 4)]
    model = load_recognizer(Config.fromfile(TOY_CPNET))
    out_norm = dict(model.named_modules())["backbone.layers.1"].out_norm
    torch.nn.init.zeros_(out_norm.weight)
    run, frames = recognizer_sample(model, toy_index=0)
    with pytest.warns(UserWarning, match="backbone.layers.1 is still the identity"):
        result = visualize_proposals(model, run, frames, str(tmp_path / "fresh.png"))
    assert result["identity"]
    trained = load_recognizer(TOY_CPNET, checkpoint_of(Config.fromfile(TOY_CPNET),
                                                       tmp_path / "toy.pth"))
    run, frames = recognizer_sample(trained, toy_index=0)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert not visualize_proposals(trained, run, frames, str(tmp_path / "ok.png"))["identity"]
