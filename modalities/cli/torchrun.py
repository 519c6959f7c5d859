"""``modalities torchrun [torchrun options] train CFG ...``: torchrun, set up for runs that get preempted.

It is torch's own launcher (``torch.distributed.run``, every option the same) with three differences:
- the command after the options is a modalities command (``train CFG ...``; ``-m modalities`` is implied);
- SIGUSR1 is forwarded to the ranks too (SLURM's ``--signal=USR1@90`` warning), and the ranks get
  ``--shutdown_timeout`` 600 s (not 30) to finish their step and save a checkpoint before they are killed;
- a stop by a signal ends in one line and exit code 75 (the ranks saved the step they reached; rerun the same
  command with ``--resume auto``), not torchrun's traceback; a rank that failed is named with its exit code.
"""

from __future__ import annotations

import argparse
import sys

DEFAULTS = {"--signals_to_handle": "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1", "--shutdown_timeout": "600"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Only for `modalities torchrun --help`: the arguments are torchrun's, passed through by launch().
    parser.add_argument("torchrun_arguments", nargs=argparse.REMAINDER, help="torchrun's options, then train CFG ...")


def run(args: argparse.Namespace) -> int:
    return launch(list(args.torchrun_arguments))


def _given(argv: list[str], option: str) -> bool:
    spellings = {option, option.replace("_", "-")}
    return any(a in spellings or a.split("=", 1)[0] in spellings for a in argv)


def launch(argv: list[str]) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    from modalities.training.signals import EXIT_STOPPED

    defaults = [item for option, value in DEFAULTS.items() if not _given(argv, option) for item in (option, value)]
    parsed = get_args_parser().parse_args(defaults + argv)
    if not parsed.module and not parsed.no_python and parsed.training_script != "modalities":
        # `modalities torchrun ... train CFG`: the script is our command line.
        parsed.training_script_args = [parsed.training_script, *parsed.training_script_args]
        parsed.training_script, parsed.module = "modalities", True
    try:
        torchrun(parsed)
    except SignalException as e:
        print(
            f"modalities torchrun: {e.sigval.name} received and passed to the ranks, which finish their step and "
            f"save it (see their lines above); rerun the same command with --resume auto to continue; exit code "
            f"{EXIT_STOPPED}",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    except ChildFailedError as e:
        codes = {failure.exitcode for failure in e.failures.values()}
        if codes == {EXIT_STOPPED}:
            print(
                f"modalities torchrun: the ranks stopped on a signal and saved their step; rerun the same command "
                f"with --resume auto to continue; exit code {EXIT_STOPPED}",
                file=sys.stderr,
            )
            return EXIT_STOPPED
        for rank, failure in sorted(e.failures.items()):
            print(
                f"modalities torchrun: rank {rank} (local rank {failure.local_rank}) exited with code "
                f"{failure.exitcode}: see its output above",
                file=sys.stderr,
            )
        return 1
    return 0
