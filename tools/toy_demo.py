"""`make demo`: the CPNet paper's toy experiment (Table 1), trained and evaluated on the CPU.

Trains the five toy networks of mmaction_configs/toy/ one after another with mmengine's Runner,
one progress bar each (epoch, loss, validation accuracy, time left), evaluates each on the whole
training and validation sets, and prints Table 1 beside the paper's numbers. Writes, in
work_dirs/toy/: table1.md, table1.json, table1.png (the accuracies as bars) and curves.png
(training loss and validation accuracy per epoch); each network's full mmengine log and
console output stay in work_dirs/toy/<network>/. The work is :mod:`cp_plugin.toy.table1`'s.
"""
import argparse
import json
import os
import sys
import warnings

# mmcv-lite says at import that it lacks a CUDA op no toy network uses: keep the terminal clear
# (for this import only: the process's warning filters stay as they were).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Fail to import ``MultiScaleDeformableAttention``")
    from cp_plugin.mmaction.runtime.progress import ProgressHook, console_to
    from cp_plugin.toy.table1 import (DEFAULT_MODELS, TABLE1, markdown_table, plot_curves,
                                      plot_table, train_and_evaluate)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=os.path.join("work_dirs", "toy"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", choices=list(TABLE1), default=DEFAULT_MODELS)
    parser.add_argument("--max-epochs", type=int, help="override the configs' epoch count")
    parser.add_argument("--padding-mode", choices=["zeros", "circular"],
                        help="override the convolutions' padding (the configs use circular)")
    parser.add_argument("--steps", nargs=2, type=int, metavar=("MIN", "MAX"),
                        help="override the square's per-step motion range (the paper's: 7 9)")
    args = parser.parse_args(argv)

    results = {}
    terminal = sys.stderr
    print(f"Training {len(args.models)} networks on the moving-square toy set; full logs in "
          f"{args.work_dir}/<network>/", flush=True)
    for name in args.models:
        progress = ProgressHook(name, terminal)
        with console_to(os.path.join(args.work_dir, name, "console.log")):
            results[name] = train_and_evaluate(name, args.work_dir, args.seed, args.max_epochs,
                                               args.padding_mode, args.steps, progress)
        row = results[name]
        print(f"  {name}: train {100 * row['train_acc']:.1f}%, val {100 * row['val_acc']:.1f}%, "
              f"{row['seconds']:.0f} s", flush=True)

    table = markdown_table(results)
    os.makedirs(args.work_dir, exist_ok=True)
    paths = {key: os.path.join(args.work_dir, file) for key, file in
             (("md", "table1.md"), ("json", "table1.json"), ("bars", "table1.png"),
              ("curves", "curves.png"))}
    with open(paths["md"], "w") as f:
        f.write(table)
    with open(paths["json"], "w") as f:
        json.dump(results, f, indent=2)
    plot_table(results, paths["bars"])
    plot_curves(results, paths["curves"])
    print("\nTable 1 (accuracy %, paper beside ours):\n" + table)
    print("wrote " + ", ".join(paths.values()))
    return results


if __name__ == "__main__":
    main()
