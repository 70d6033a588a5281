"""cp_plugin is a guest in its user's process: importing it loads only what was asked for and
changes no library, no registry entry it was not asked for, and no torch.load."""
import io
import json
import subprocess
import sys
import textwrap

import pytest
import torch


class CallsGetattr:
    """Pickles as ``getattr('abc', 'upper')``: refused by torch's weights_only check."""

    def __reduce__(self):
        return getattr, ("abc", "upper")


class WritesModuleGlobals:
    """Pickles as ``getattr(f, '__globals__')`` plus a SETITEMS on the result: loading it would add
    ``cp_plugin_test_marker`` to the globals of torch._utils (``f``'s module)."""

    def __reduce__(self):
        return (getattr, (torch._utils._rebuild_tensor_v2, "__globals__"), None, None,
                iter([("cp_plugin_test_marker", 1)]))


def saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


HOSTILE = {"getattr": saved(CallsGetattr()), "module globals": saved(WritesModuleGlobals())}


def refused(data: bytes) -> bool:
    try:
        torch.load(io.BytesIO(data), weights_only=True)
    except Exception as error:  # torch's UnpicklingError for a global it does not allow
        return "weights_only" in str(error).lower() or "Unsupported global" in str(error)
    return False


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_pickles_stay_refused_after_import(name):
    import cp_plugin.mmaction  # noqa: F401
    import timm_adapters  # noqa: F401

    assert refused(HOSTILE[name])
    assert not hasattr(torch._utils, "cp_plugin_test_marker")


def test_allow_list_is_scoped_to_mmengine_loads():
    """Inside ``mmengine_checkpoints_allowed`` getattr is allowed (so the test above could fail
    if the import had widened the list); outside it torch's list is what it was."""
    from cp_plugin.mmaction.compat import mmengine_checkpoints_allowed

    before = set(map(id, torch.serialization.get_safe_globals()))
    with mmengine_checkpoints_allowed():
        assert not refused(HOSTILE["getattr"])
    assert set(map(id, torch.serialization.get_safe_globals())) == before
    assert refused(HOSTILE["getattr"])


SNAPSHOT = textwrap.dedent("""
    import sys, types, warnings
    import torch

    def snapshot():
        state = {}
        for name, module in list(sys.modules.items()):
            if name.split('.')[0] not in ('mmaction', 'mmengine', 'mmcv', 'timm', 'torch'):
                continue
            for attr, value in list(vars(module).items()):
                state[name, attr] = id(value)
                if isinstance(value, type) and value.__module__ == name:
                    for key, member in list(vars(value).items()):
                        state[name, attr, key] = id(member)
        return state

    # mmaction2 1.2.0 cannot import its models without the DRN placeholder, the one thing that
    # cp_plugin installs: put an equal one in by hand so that everything is imported first.
    for name in ('mmaction.models.localizers.drn', 'mmaction.models.localizers.drn.drn'):
        stub = types.ModuleType(name)
        stub.__path__, stub.DRN = [], object
        sys.modules[name] = stub
    import mmaction.models, mmaction.datasets, mmaction.apis, mmengine.runner, mmengine.hooks
    import mmengine.optim, mmengine.dataset, mmcv.transforms, timm, timm.models, timm.layers
    before, filters = snapshot(), list(warnings.filters)
    safe = set(map(id, torch.serialization.get_safe_globals()))

    import cp_plugin, timm_adapters, cp_plugin.mmaction, cp_plugin.toy.mmaction
    import cp_plugin.baselines.mmaction
    after = snapshot()
    changed = sorted(str(key) for key in before if key in after and after[key] != before[key])
    print('changed:', changed)
    print('filters same:', list(warnings.filters) == filters)
    print('safe globals same:', set(map(id, torch.serialization.get_safe_globals())) == safe)
""")


def test_import_changes_no_attribute_of_other_libraries():
    result = subprocess.run([sys.executable, "-c", SNAPSHOT], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()[-3:]
    assert lines == ["changed: []", "filters same: True", "safe globals same: True"], lines


HEAVY = ["mmaction", "mmengine", "mmcv", "cv2", "decord"]
OURS = {  # registry: names cp_plugin.mmaction registers
    "MODELS": ["CPModule", "CPBackbone", "VideoBackbone", "CPNeck", "TimmCPBackbone",
               "NonLocal3d", "FusedNonLocal3d"],
    "RUNNERS": ["WeightsOnlyRunner"],
    "HOOKS": ["RandomStateHook", "RankAgreementHook", "Float32ScoresHook"],
    "TRANSFORMS": ["SixCrop"]}
TOY = {"MODELS": ["ToyVideoNet", "ConvBNReLU3d"], "DATASETS": ["MovingSquareDataset"]}
ARTNET = {"MODELS": ["ARTNetResNet18", "SMARTBlock"]}
MOTION = {"DATASETS": ["FootageClipDataset"]}


def names(*groups):
    return sorted(f"{registry}.{name}" for group in groups for registry, names in group.items()
                  for name in names)


REGISTERED = names(OURS, TOY, ARTNET, MOTION)

IMPORT_AND_REPORT = textwrap.dedent("""
    import json, sys
    {statement}
    registered = []
    if 'mmaction.registry' in sys.modules:
        import mmaction.registry as registries
        for name in {names!r}:
            registry, key = name.split('.')
            if key in getattr(registries, registry).module_dict:
                registered.append(name)
    print(json.dumps(dict(heavy=sorted({{m.split('.')[0] for m in sys.modules}} & {heavy!r}),
                          registered=sorted(registered))))
""")


def import_in_fresh_process(statement):
    script = IMPORT_AND_REPORT.format(statement=statement, names=REGISTERED,
                                      heavy=set(HEAVY))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


@pytest.mark.parametrize("statement", ["import cp_plugin", "from cp_plugin import CPModule",
                                       "import timm_adapters"])
def test_torch_and_timm_users_get_no_mmaction2_and_no_output(statement):
    report, stderr = import_in_fresh_process(statement)
    assert report == dict(heavy=[], registered=[])
    assert stderr == ""


@pytest.mark.parametrize("statement, expected", [
    ("import cp_plugin.mmaction", names(OURS)),
    ("import cp_plugin.toy.mmaction", names(OURS, TOY)),
    ("import cp_plugin.baselines.mmaction", names(OURS, ARTNET)),
    ("import cp_plugin.motion.mmaction", names(OURS, MOTION))])
def test_mmaction2_entry_points_register_what_they_name(statement, expected):
    report, _ = import_in_fresh_process(statement)
    assert report["registered"] == expected
