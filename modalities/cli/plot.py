"""``modalities plot EXPERIMENT_DIR [EXPERIMENT_DIR ...] -o curves.png``: training curves from results.jsonl.

Loss (train and eval), learning rate, throughput and gradient norm against steps (``--x tokens``: tokens seen),
several runs overlaid, each labelled with its experiment id. Needs matplotlib (``pip install
'modalities[plot]'``). Exit 0 when written, 2 when an input or the output cannot be used.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiments", nargs="+", metavar="EXPERIMENT_DIR",
        help="an experiment folder (experiments/<id>, holding results.jsonl) or a results.jsonl file",
    )
    parser.add_argument("-o", "--output", default="curves.png", help="the picture: .png, .svg or .pdf (default: curves.png)")
    parser.add_argument("--x", dest="x_axis", choices=("steps", "tokens"), default="steps",
                        help="the x axis: optimizer steps (tokens on top when every run agrees) or tokens seen")
    parser.add_argument("--title", default=None, help="the figure's title (default: the experiment ids)")


def run(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    from modalities.logging.curves import ResultsFileError, read_results
    from modalities.logging.plot import FORMATS

    if not args.output.lower().endswith(FORMATS):
        print(f"modalities plot: error: -o {args.output}: the name must end in {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    if find_spec("matplotlib") is None:
        print("modalities plot: error: needs matplotlib, which is not installed: pip install 'modalities[plot]'",
              file=sys.stderr)
        return 2
    runs = []
    for path in args.experiments:
        try:
            curves = read_results(path)
        except ResultsFileError as e:
            print(f"modalities plot: error: {e}", file=sys.stderr)
            return 2
        for message in curves.skipped:
            print(f"modalities plot: warning: {message}", file=sys.stderr)
        runs.append(curves)
    names = [run.name for run in runs]
    for run in runs:  # two folders of the same name: tell them apart by their paths
        if names.count(run.name) > 1:
            run.name = str(run.path.parent)
    from modalities.logging.plot import plot_runs

    try:
        written = plot_runs(runs, args.output, x_axis=args.x_axis, title=args.title)
    except OSError as e:
        print(f"modalities plot: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {written} ({', '.join(run.name for run in runs)})")
    return 0
