"""The measuring tools behind `make bench` (the rows themselves run in `make bench`)."""
import sys

import pytest
import torch

from cp_plugin.measure import (alternating_medians, alternating_medians_of, dispatched_ops,
                                peak_memory_bytes)

MIB = 1 << 20


def test_peak_memory_counts_what_is_alive_at_once():
    def two_then_one():
        a = torch.ones(MIB // 4)        # 1 MiB
        b = torch.ones(2 * MIB // 4)    # 2 MiB: 3 MiB alive
        del a, b
        c = torch.ones(MIB // 2)        # 2 MiB alone
        return c.sum()

    peak = peak_memory_bytes(two_then_one)
    assert 3 * MIB <= peak < 3 * MIB + 64 * 1024


def test_peak_memory_ignores_what_was_allocated_before():
    before = torch.ones(8 * MIB // 4)
    assert peak_memory_bytes(lambda: before.sum()) < 64 * 1024


def test_alternating_medians_runs_both_in_turn():
    calls = []
    ours, baseline = alternating_medians(lambda: calls.append("o"), lambda: calls.append("b"),
                                         repeats=3, warmup=1)
    assert calls == ["o", "b"] * 4
    assert ours >= 0 and baseline >= 0


def test_alternating_medians_of_three_takes_each_median():
    import time

    calls = []

    def sleeper(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)
        return run

    medians = alternating_medians_of(dict(a=sleeper("a", 0.0), b=sleeper("b", 0.02),
                                          c=sleeper("c", 0.0)), repeats=3, warmup=0)
    assert calls == ["a", "b", "c"] * 3
    assert medians["b"] >= 0.02 > medians["a"] and medians["b"] > medians["c"]


def test_cuda_checks_autocast_parts_pass_on_the_cpu():
    """The GPU check script's autocast checks, run where this suite runs (the CPU)."""
    from benchmarks import cuda_check

    cpu = torch.device("cpu")
    for dtype in (torch.bfloat16, torch.float16):
        assert cuda_check.search_under_autocast_is_exact(dtype, cpu)
        assert all(cuda_check.autocast_is_sound(cfg, dtype, cpu) for cfg in cuda_check.CONFIGS)


def test_every_group_yields_its_rows_as_it_measures_them():
    import inspect

    from benchmarks.__main__ import GROUPS

    assert all(inspect.isgeneratorfunction(group) for group in GROUPS.values())


def test_bench_prints_each_group_and_row_as_measured(tmp_path, capsys, monkeypatch):
    from benchmarks import __main__ as bench
    from benchmarks.rows import time_and_memory

    measured = []

    def tiny(device, repeats):  # a group of two rows: time, then peak memory
        x = torch.randn(64, 64)
        for name in ("first", "second"):
            measured.append((name, capsys.readouterr().out))  # what was printed before it ran
            yield from time_and_memory(f"tiny {name}", lambda: x @ x, lambda: x + x, device,
                                       repeats).items()

    monkeypatch.setitem(bench.GROUPS, "tiny", tiny)
    bench.main(["--groups", "tiny", "--repeats", "1", "--out-dir", str(tmp_path)])
    printed = "".join(out for _, out in measured) + capsys.readouterr().out
    assert measured[0][1].splitlines()[-1].startswith("[1/1 tiny, ")
    assert "tiny first time" in measured[1][1]  # printed before the second row was measured
    rows = [line for line in printed.splitlines() if line.startswith("tiny ")]
    assert len(rows) == 4 and all(float(row.split()[-1]) > 0 for row in rows)  # ratio last
    assert "[done, " in printed and (tmp_path / "results.json").exists()


def test_peak_memory_keeps_the_profiler_lines_off_the_terminal(capfd):
    peak_memory_bytes(lambda: torch.ones(1000).sum())
    assert "profiler_st" not in capfd.readouterr().err
    peak_memory_bytes(lambda: print("measured", file=sys.stderr, flush=True))
    assert "measured" in capfd.readouterr().err  # what the measured code says still shows


def test_dispatched_ops_counts_kernels_not_views_and_the_host_syncs():
    x = torch.randn(4, 3, requires_grad=True)
    assert dispatched_ops(lambda: x.t().unsqueeze(0).expand(2, 3, 4)) == (0, 0)  # views: no kernel
    ops, syncs = dispatched_ops(lambda: bool((x * 2).sum() > 0))
    assert (ops, syncs) == (4, 1)  # mul, sum, gt, and _local_scalar_dense, which syncs
    ops, _ = dispatched_ops(lambda: (x * 2).sum().backward())
    assert ops > 2  # the backward's ops are counted too


@pytest.mark.parametrize("cfg", [dict(k=3), dict(k=2, bottleneck_channels=4, shrink=2),
                                 dict(k=3, checkpoint_pairs=True)], ids=str)
def test_cp_forward_and_backward_never_sync_the_host(cfg):
    """No bool(), int() or .item() of a tensor in CP's forward or backward on a GPU's paths, or
    on the CPU's but for the finite check (free on the CPU): on a GPU each would stall the queue
    and forbid CUDA-graph capture."""
    from cp_plugin import CPModule
    from cp_plugin.device_paths import ACCELERATOR_PATHS, CPU_PATHS, use_device_paths

    module = CPModule(8, **cfg).train()
    x = torch.randn(2, 8, 3, 6, 6, requires_grad=True)
    for paths, expected in [(ACCELERATOR_PATHS, 0), (CPU_PATHS, 1),
                            (CPU_PATHS.replace(finite_check=False), 0)]:
        with use_device_paths("cpu", paths):
            ops, syncs = dispatched_ops(lambda: module(x).square().sum().backward())
        assert ops > 0 and syncs == expected, paths


def test_gpu_rows_run_every_variant(monkeypatch):
    """The rows benchmarks/gpu_session.sh runs on a lent GPU, on the CPU at one tiny shape
    ('aot_eager': inductor's code generation takes minutes here), module rows only."""
    from benchmarks import rows

    monkeypatch.setattr(rows, "GPU_SHAPES", (("tiny", 8, dict(k=2), 4, 2),))
    monkeypatch.setattr(rows, "COMPILED_SHAPES", ("tiny",))
    monkeypatch.setattr(rows, "COMPILE_BACKEND", "aot_eager")
    monkeypatch.setattr(rows, "mmaction_installed", lambda: False)
    torch._dynamo.reset()
    cpu = torch.device("cpu")
    results = dict(rows.gpu_rows(cpu, repeats=1)) | dict(rows.gpu_compiled_rows(cpu, repeats=1))
    torch._dynamo.reset()
    assert [name.split(":")[0] for name in results] == [
        "GPU float32 eager", "GPU AMP bf16 eager", "GPU float32 compiled", "GPU AMP bf16 compiled"]
    assert all(r["ours"] > 0 and r["baseline"] > 0 for r in results.values())


@pytest.mark.usefixtures("mmaction_scope")
def test_train_steps_at_another_depth_take_that_depths_placement():
    """The GPU rows' CPNet-R50 and NL C2D-R50 are the R101 configs at depth 50."""
    from benchmarks.rows import build_recognizer
    from cp_plugin.insertion import insertion_sites
    from cp_plugin.presets import CP_PRESETS, NONLOCAL_PRESETS

    for config, presets in (("cpnet_r101", CP_PRESETS), ("nl_c2d_r101", NONLOCAL_PRESETS)):
        model = build_recognizer(f"_base_/models/{config}.py", torch.device("cpu"), depth=50)
        assert model.backbone.backbone.depth == 50
        sites = [site.block_name for site in insertion_sites(model.backbone)]
        expected = [entry if isinstance(entry, str) else entry["block"]
                    for entry in presets["resnet50"]["blocks"]]
        assert sites == expected, (config, sites)
