"""cp_plugin.mmaction.compat against the real mmaction2 / mmengine stack, and imports without it."""
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from cp_plugin import CPModule
from cp_plugin.mmaction import compat

# A finder placed first on sys.meta_path that makes the named packages look uninstalled.
BLOCK_IMPORTS = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
    sys.meta_path.insert(0, Block())
""")


def run_python(code: str, blocked=()) -> subprocess.CompletedProcess:
    script = f"BLOCKED = {set(blocked)!r}\n" + BLOCK_IMPORTS + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_import_without_mmaction_or_mmengine():
    result = run_python("""
        import cp_plugin, torch
        x = torch.randn(1, 8, 2, 3, 3)
        assert torch.equal(cp_plugin.CPModule(8, k=2)(x), x)
        try:
            import cp_plugin.mmaction
        except ImportError as error:
            assert 'pip install "cp-plugin[mmaction]"' in str(error), error
        else:
            raise AssertionError('cp_plugin.mmaction imported without mmaction2')
        assert 'mmaction' not in sys.modules and 'mmengine' not in sys.modules
        print('ok')
    """, blocked={"mmaction", "mmengine", "mmcv"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_mmaction_models_import_beside_transformers_5(tmp_path):
    """mmaction2 1.2.0 imports its VindLU models whenever transformers >= 4.28 is installed, and
    they need transformers 4. A stand-in transformers 5 that fails on import, as those models'
    imports fail against the real one."""
    (tmp_path / "transformers").mkdir()
    (tmp_path / "transformers" / "__init__.py").write_text(
        "raise ImportError('stand-in for transformers 5: no transformers 4 API here')\n")
    (tmp_path / "transformers-5.0.0.dist-info").mkdir()
    (tmp_path / "transformers-5.0.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n")
    result = run_python(f"""
        sys.path.insert(0, {str(tmp_path)!r})
        import cp_plugin.mmaction
        assert cp_plugin.mmaction.compat.transformers_major_version() == 5
        import mmaction.models
        from mmaction.registry import MODELS
        assert MODELS.get('C2D') is not None and MODELS.get('CPBackbone') is not None
        print('ok')
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_timm_adapters_needs_timm():
    result = run_python("import timm_adapters", blocked={"timm"})
    assert result.returncode != 0
    assert 'pip install "cp-plugin[timm]"' in result.stderr
    ok = run_python("import timm_adapters; print('ok')")
    assert ok.returncode == 0, ok.stderr


def test_mmaction_models_import_after_cp_plugin_mmaction():
    result = run_python("""
        import cp_plugin.mmaction
        import mmaction.models
        from mmaction.registry import MODELS
        assert MODELS.get('C2D') is not None
        from mmaction.models.localizers.drn.drn import DRN
        try:
            DRN()
        except ImportError as error:
            assert 'lacks mmaction/models/localizers/drn' in str(error)
        else:
            raise AssertionError('placeholder DRN must refuse to build')
        print('ok')
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


class TinyVideoData(torch.utils.data.Dataset):
    """Eight random (C=4, T=3, 5x5) clips with labels, generated in memory."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        gen = torch.Generator().manual_seed(index)
        return dict(inputs=torch.randn(4, 3, 5, 5, generator=gen), labels=torch.tensor(index % 2))


def make_runner(work_dir, max_epochs, resume=False, load_from=None, custom_hooks=None):
    from mmengine.model import BaseModel

    from cp_plugin.mmaction import WeightsOnlyRunner

    class TinyCPNet(BaseModel):
        def __init__(self):
            super().__init__()
            self.cp = CPModule(4, k=2)
            self.fc = nn.Linear(4, 2)

        def forward(self, inputs, labels, mode="tensor"):
            logits = self.fc(self.cp(inputs).amax(dim=(2, 3, 4)))
            if mode == "loss":
                return dict(loss=nn.functional.cross_entropy(logits, labels))
            return logits

    return WeightsOnlyRunner(
        model=TinyCPNet(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=TinyVideoData(), batch_size=4, num_workers=0,
                              collate_fn=dict(type="default_collate"),
                              sampler=dict(type="DefaultSampler", shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1, momentum=0.9)),
        param_scheduler=dict(type="MultiStepLR", milestones=[1], by_epoch=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1),
                           logger=dict(type="LoggerHook", interval=1)),
        randomness=dict(seed=0), resume=resume, load_from=load_from, custom_hooks=custom_hooks)


def test_load_from_names_in_one_line_what_the_checkpoint_lacked(tmp_path):
    """A C2D-style checkpoint (no CP entries) loaded into a CPNet: one warning line counts the
    CP module's entries, names the module and says nothing else was missing; RandomStateHook
    says nothing (a load_from is no resume). With entries missing outside CP, those are named."""
    import logging

    from cp_plugin.mmaction import RandomStateHook

    state = make_runner(tmp_path / "source", max_epochs=1).model.state_dict()
    cp_entries = [k for k in state if k.startswith("cp.") and "num_batches_tracked" not in k]
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("cp.")}},
               tmp_path / "plain.pth")
    torch.save({"state_dict": {k: v for k, v in state.items() if k != "fc.bias"}},
               tmp_path / "no_bias.pth")

    def warnings_of(checkpoint):
        runner = make_runner(tmp_path / f"run_{checkpoint}", max_epochs=1,
                             custom_hooks=[RandomStateHook()],
                             load_from=str(tmp_path / checkpoint))
        records = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = records.append
        runner.logger.addHandler(handler)
        try:
            runner.load_or_resume()
        finally:
            runner.logger.removeHandler(handler)
        return [r.getMessage() for r in records]

    (line,) = warnings_of("plain.pth")
    total = len([k for k in state if "num_batches_tracked" not in k])
    assert line.endswith(f"plain.pth: {len(cp_entries)} of the model's {total} entries not in "
                         f"the checkpoint, left as initialised: {len(cp_entries)} in 1 CP "
                         f"module(s) (cp), nothing else")
    (line,) = warnings_of("no_bias.pth")
    assert line.endswith(f"1 of the model's {total} entries not in the checkpoint, left as "
                         f"initialised: 1 elsewhere (fc.bias)")


def test_runner_checkpoint_resumes_and_loads_under_weights_only(tmp_path):
    pytest.importorskip("mmengine")
    make_runner(tmp_path, max_epochs=1).train()
    checkpoint = tmp_path / "epoch_1.pth"
    # torch's default is weights_only=True: a plain load refuses mmengine's logging objects...
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        torch.load(checkpoint)
    # ...which are exactly what the scoped allow-list holds.
    allowed = {f"{obj.__module__}.{obj.__qualname__}"
               for obj in compat.mmengine_checkpoint_globals()}
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint)) <= allowed
    with compat.mmengine_checkpoints_allowed():
        state = torch.load(checkpoint)
    assert type(state["message_hub"]["log_scalars"]["train/loss"]).__name__ == "HistoryBuffer"

    resumed = make_runner(tmp_path, max_epochs=2, resume=True)
    resumed.train()
    assert resumed.iter == 4 and resumed.epoch == 2
    assert (tmp_path / "epoch_2.pth").exists()
    with compat.mmengine_checkpoints_allowed():
        final = torch.load(tmp_path / "epoch_2.pth", weights_only=True)
    assert final["meta"]["iter"] == 4

    # load_from: weights only, a fresh schedule.
    loaded = make_runner(tmp_path / "load_from", max_epochs=1, load_from=str(checkpoint))
    loaded.train()
    assert loaded.iter == 2
    first = loaded.model.state_dict()
    assert first.keys() == state["state_dict"].keys()
