"""tools/infer.py on a generated mp4: top-5 through mmaction2's inference API, and timm's."""
import os

import pytest
import torch
from mmengine.config import Config

import cp_plugin.mmaction  # noqa: F401  (before mmaction2: repairs its install, registers our modules)
from cp_plugin.testing import assert_close_to_rounding
from shrink import shrink_config
from test_export import CPNET_R18, activate_cp


def assert_probabilities(scores):
    """Non-negative and summing to one, to the rounding of the softmax's sum, the mean over
    views and this sum (each over a few times as many terms as classes, at most)."""
    assert (scores >= 0).all()
    assert_close_to_rounding(scores.sum(), torch.tensor(1.0), reduction_length=3 * len(scores))


@pytest.fixture
def trained_cpnet(tmp_path, video_data, rawframe_data, imagenet_checkpoint):
    """A shrunk CPNet-R18 config (4 classes) and a checkpoint of it with active CP modules."""
    from mmaction.registry import MODELS
    from mmengine.registry import init_default_scope

    cfg = shrink_config(Config.fromfile(CPNET_R18), tmp_path / "work", video_data,
                        rawframe_data, imagenet_checkpoint)
    cfg.model.cls_head.num_classes = 4
    # mmaction2's inference_recognizer reads the top-level test_pipeline: the shrunk one.
    cfg.test_pipeline = cfg.test_dataloader.dataset.pipeline
    config = str(tmp_path / "config.py")
    cfg.dump(config)
    init_default_scope("mmaction")
    torch.manual_seed(0)
    model = activate_cp(MODELS.build(cfg.model))
    checkpoint = str(tmp_path / "epoch_1.pth")
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), checkpoint)
    labels = tmp_path / "labels.txt"
    labels.write_text("left\nright\nup\ndown\n")
    return config, checkpoint, str(labels)


def test_mmaction_top5_from_the_inference_api(trained_cpnet, video_data, tmp_path, capsys):
    from tools import infer

    config, checkpoint, labels = trained_cpnet
    video = str(video_data / "clip_0.mp4")
    picture = str(tmp_path / "proposals.png")
    result = infer.main([config, checkpoint, video, "--label-file", labels,
                         "--proposals", picture])
    printed = capsys.readouterr().out
    scores = result["scores"]
    assert scores.shape == (4,)
    assert_probabilities(scores)  # average_clips='prob'
    top = result["top"]
    assert len(top) == 4  # all four classes, highest first, named by the label file
    assert [s for _, _, s in top] == sorted(scores.tolist(), reverse=True)
    for index, name, score in top:
        assert name == ["left", "right", "up", "down"][index] and score == float(scores[index])
        assert f"{name}" in printed and f"{score:.4f}" in printed
    assert os.path.getsize(picture) > 10_000 and result["proposals"]["queries"]
    # Another video scores differently: the scores come from the video.
    other = infer.main([config, checkpoint, str(video_data / "clip_1.mp4")])["scores"]
    assert not torch.allclose(other, scores)


def test_class_names_from_the_dataset_metainfo_and_errors(trained_cpnet, video_data, tmp_path):
    from tools import infer

    config, checkpoint, _ = trained_cpnet
    cfg = Config.fromfile(config)
    cfg.test_dataloader.dataset.metainfo = dict(classes=("a", "b", "c", "d"))
    named = str(tmp_path / "named.py")
    cfg.dump(named)
    video = str(video_data / "clip_0.mp4")
    top = infer.main([named, checkpoint, video, "--top", "2"])["top"]
    assert len(top) == 2 and all(name == "abcd"[i] for i, name, _ in top)
    assert infer.main([config, checkpoint, video])["top"][0][1].startswith("class ")

    wrong = tmp_path / "three.txt"
    wrong.write_text("x\ny\nz\n")
    with pytest.raises(ValueError, match="scores 4 classes but 3 class names"):
        infer.main([config, checkpoint, video, "--label-file", str(wrong)])
    with pytest.raises(FileNotFoundError, match="video 'missing.mp4' does not exist"):
        infer.main([config, checkpoint, "missing.mp4"])
    with pytest.raises(FileNotFoundError, match="checkpoint 'nope.pth' does not exist"):
        infer.main([config, "nope.pth", video])
    # A checkpoint of another model is refused, not half loaded.
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    partial = str(tmp_path / "partial.pth")
    torch.save(dict(state_dict={k: v for k, v in state.items() if "cls_head" not in k}), partial)
    with pytest.raises(RuntimeError, match="missing keys.*cls_head"):
        infer.main([config, partial, video])


def test_mmaction_read_errors_name_the_video(trained_cpnet, damaged_clip):
    from cp_plugin.read_errors import FileReadError
    from tools import infer

    config, checkpoint, _ = trained_cpnet
    # The shipped configs' NameReadFailures names it first (a sample of no dataset: index '?').
    with pytest.raises(FileReadError, match=rf"could not read .*{damaged_clip}"):
        infer.main([config, checkpoint, damaged_clip])


def test_timm_model_on_a_video(tmp_path, video_data):
    import timm
    import timm_adapters  # noqa: F401
    from tools import infer

    torch.manual_seed(0)
    model = activate_cp(timm.create_model("cpnet_resnet18", num_classes=3))
    checkpoint = str(tmp_path / "cpnet.pth")
    torch.save(model.state_dict(), checkpoint)
    labels = tmp_path / "labels.txt"
    labels.write_text("p\nq\nr\n")
    result = infer.main(["--timm-model", "cpnet_resnet18", "--num-classes", "3",
                         "--timm-checkpoint", checkpoint, "--num-frames", "4",
                         "--label-file", str(labels), str(video_data / "clip_2.mp4")])
    assert_probabilities(result["scores"])
    assert sorted(name for _, name, _ in result["top"]) == ["p", "q", "r"]


REAL_CLIP = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                         "real_clip_pool_cleaning.mp4")


@pytest.fixture
def damaged_clip(tmp_path):
    """The real camera clip cut to its first 200 kB: its header promises frames it lacks."""
    if not os.path.isfile(REAL_CLIP):
        pytest.skip(f"the shared real clip is absent here ({REAL_CLIP})")
    path = tmp_path / "damaged.mp4"
    with open(REAL_CLIP, "rb") as f:
        path.write_bytes(f.read(200_000))
    return str(path)


def test_timm_checkpoint_gives_its_class_count_and_read_errors_name_the_file(
        tmp_path, damaged_clip):
    from timm_adapters import clip_from_video, load_video_model
    from cp_plugin.read_errors import FileReadError

    import timm

    torch.manual_seed(0)
    model = activate_cp(timm.create_model("cpnet_resnet18", num_classes=2)).eval()
    checkpoint = str(tmp_path / "two_classes.pth")
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    loaded = load_video_model("cpnet_resnet18", checkpoint)
    assert loaded.num_classes == 2
    clip, frames = clip_from_video(loaded, REAL_CLIP, num_frames=4)
    assert clip.shape == (1, 3, 4, 224, 224) and frames.shape == (4, 224, 224, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip), model(clip), rtol=0, atol=0)
    with pytest.raises(ValueError, match=rf"checkpoint '{checkpoint}' scores 2 classes .* "
                                         rf"num_classes=5 was asked for"):
        load_video_model("cpnet_resnet18", checkpoint, num_classes=5)

    with pytest.raises(FileReadError, match=rf"could not read video '{damaged_clip}'"):
        clip_from_video(loaded, damaged_clip, num_frames=8)
    damaged_checkpoint = tmp_path / "damaged.pth"
    damaged_checkpoint.write_bytes(open(checkpoint, "rb").read()[:5000])
    with pytest.raises(FileReadError, match=rf"could not read checkpoint '{damaged_checkpoint}'"):
        load_video_model("cpnet_resnet18", str(damaged_checkpoint))
