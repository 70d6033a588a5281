"""cp_plugin.device_paths is the one place that decides CP's per-device paths."""
import ast
import os

import pytest
import torch

import cp_plugin
from cp_plugin import CPModule
from cp_plugin.device_paths import (ACCELERATOR_PATHS, CPU_PATHS, DevicePaths, get_device_paths,
                                    set_device_paths, use_device_paths)
from cp_plugin.testing import randomise_norms

CORE = os.path.dirname(cp_plugin.__file__)
#: Device-dependent code in the core that is not a choice between CP's paths, and why.
NOT_PATH_CHOICES = {
    ("knn.py", "float32_matmul_lowered"): "reads the matmul backend's precision switch",
    ("measure.py", "peak_memory_bytes"): "measures memory the way each device reports it",
    ("measure.py", "synchronize"): "waits for a GPU's queue before reading a clock",
}


def device_branches(source: str, filename: str):
    """(filename, function) of every comparison, membership test or attribute read in
    ``source`` that asks which device a tensor is on, outside device_paths.py."""
    found = []

    def visit(node, scope):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            scope = f"{scope}.{node.name}" if scope else node.name
        if isinstance(node, ast.Attribute) and node.attr in ("is_cuda", "is_mps", "is_xpu"):
            found.append((filename, scope))
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            if any(isinstance(p, ast.Attribute) and p.attr == "type" for p in parts) or any(
                    isinstance(p, ast.Constant) and p.value in ("cuda", "cpu", "mps", "xpu")
                    for p in parts):
                found.append((filename, scope))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "is_available"
                and getattr(node.func.value, "attr", None) in ("cuda", "mps", "xpu")):
            found.append((filename, scope))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(ast.parse(source), "")
    return found


def test_every_device_dependent_branch_in_the_core_is_the_policys():
    """A new per-device choice in CP's core must go through device_paths, where the tests'
    ``use_device_paths("cpu", ACCELERATOR_PATHS)`` reaches it; else this test names it."""
    found = []
    for name in sorted(os.listdir(CORE)):
        if name.endswith(".py") and name != "device_paths.py":
            with open(os.path.join(CORE, name)) as f:
                found += device_branches(f.read(), name)
    uncovered = sorted(set(found) - set(NOT_PATH_CHOICES))
    assert not uncovered, f"device-dependent branches outside cp_plugin.device_paths: {uncovered}"
    assert set(NOT_PATH_CHOICES) <= set(found), "an exemption no longer exists: remove it"


@pytest.mark.parametrize("snippet", [
    "def f(x):\n    return 1 if x.is_cuda else 2",
    "def f(x):\n    return x.device.type == 'cuda'",
    "def f(x):\n    return x.device.type in BUDGETS",
    "def f(kind):\n    return 'cpu' != kind",
    "def f():\n    return torch.cuda.is_available()",
])
def test_the_scan_sees_each_way_to_ask_for_the_device(snippet):
    assert device_branches(snippet, "new.py") == [("new.py", "f")]


def test_defaults_per_device_and_the_switches():
    assert get_device_paths("cpu") is CPU_PATHS and get_device_paths(torch.device("cpu")) is CPU_PATHS
    assert get_device_paths("cuda:1") is ACCELERATOR_PATHS and get_device_paths("mps") is ACCELERATOR_PATHS
    debug = ACCELERATOR_PATHS.replace(finite_check=True)
    with use_device_paths("cuda", debug):
        assert get_device_paths("cuda") is debug and get_device_paths("cpu") is CPU_PATHS
        with use_device_paths("cuda", CPU_PATHS):
            assert get_device_paths("cuda:0") is CPU_PATHS
        assert get_device_paths("cuda") is debug
    assert get_device_paths("cuda") is ACCELERATOR_PATHS
    set_device_paths("cpu", debug)
    try:
        assert get_device_paths("cpu") is debug
    finally:
        set_device_paths("cpu", None)
    assert get_device_paths("cpu") is CPU_PATHS


def test_bad_settings_are_refused_in_the_users_terms():
    with pytest.raises(ValueError, match="search_chunk_elements must be an int >= 1, got 0"):
        CPU_PATHS.replace(search_chunk_elements=0)
    with pytest.raises(TypeError, match="finite_check must be a bool, got 'yes'"):
        CPU_PATHS.replace(finite_check="yes")
    with pytest.raises(TypeError, match=r"paths must be a DevicePaths"):
        set_device_paths("cuda", dict(finite_check=True))
    with pytest.raises(TypeError, match="device must be a torch.device or a device type"):
        get_device_paths(0)
    with pytest.raises(RuntimeError):  # torch's own message for an unknown device type
        get_device_paths("gpu")
    assert CPU_PATHS.replace(plain_pair_elements=0) == CPU_PATHS  # 0: never plain
    assert isinstance(CPU_PATHS, DevicePaths)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_each_paths_choice_changes_only_how_not_what(train):
    """Every field of the accelerator's paths, taken one at a time on the CPU, gives the CPU's
    result (in float64, to 1e-9 relative): the policy picks between equal computations."""
    torch.manual_seed(0)
    module = randomise_norms(CPModule(8, k=3, mlp_channels=(8, 6))).double().train(train)
    x = torch.randn(2, 8, 3, 5, 4, dtype=torch.float64)
    state = {k: v.clone() for k, v in module.state_dict().items()}

    def run(paths):
        module.load_state_dict(state)
        with use_device_paths("cpu", paths):
            inputs = x.clone().requires_grad_(True)
            out = module(inputs)
            out.square().sum().backward()
        return [out.detach(), inputs.grad]

    expected = run(CPU_PATHS)
    for field in ("whole_clip_search", "search_chunk_elements", "pair_chunk_elements",
                  "plain_pair_elements"):
        got = run(CPU_PATHS.replace(**{field: getattr(ACCELERATOR_PATHS, field)}))
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-9 * float(b.abs().max()), msg=field)
