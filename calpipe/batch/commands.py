"""``calpipe batch run`` and ``calpipe batch status``."""

import argparse
import json
import sys

from calpipe.errors import CalpipeError

RUN_USAGE = ("calpipe batch run INPUT... --output-dir OUT [--workers N] [--scheduler ADDRESS|local] "
             "[--memory-limit SIZE] [--ref-store DIR] [--pipeline ALIAS] [--config FILE] "
             "[--steps.<step>.<param>=VALUE ...] [--retries K] [--force] [--ingest DB] "
             "[--archive DIR]")


def register(subparsers):
    """Add ``batch run`` and ``batch status`` to an argparse ``subparsers``."""
    batch = subparsers.add_parser("batch", help="calibrate many associations on dask.distributed")
    sub = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION",
                               parser_class=_OverridesParser)

    run = sub.add_parser("run", usage=RUN_USAGE, help="calibrate and align every association given",
                         description="Each association member is one task; each association's tweakreg "
                                     "runs once its members are done. Step parameters are set with "
                                     "--steps.<step>.<param>=VALUE as with strun.")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="association files and/or folders of *_asn.json")
    run.add_argument("--output-dir", required=True, help="folder for the products and the state database")
    run.add_argument("--workers", type=int, help="local worker processes (default: the number of cores)")
    run.add_argument("--scheduler", help="address of a running dask scheduler (tcp://host:8786), or 'local'")
    run.add_argument("--memory-limit", help="memory per local worker, e.g. 4GB (default: memory / workers)")
    run.add_argument("--ref-store", help="reference store folder (default: $CALPIPE_REFS)")
    run.add_argument("--pipeline", default="exposure_pipeline", help="pipeline alias or class (default: %(default)s)")
    run.add_argument("--config", help="parameter file (ASDF) for the pipeline")
    run.add_argument("--retries", type=int, default=3,
                     help="retries after running out of memory, each with twice the reservation (default: %(default)s)")
    run.add_argument("--force", action="store_true", help="rerun every task, done or not")
    run.add_argument("--ingest", metavar="DB", help="feed every finished association to this training database")
    run.add_argument("--archive", metavar="DIR",
                     help="archive every finished association's raw exposures and products here "
                          "(as `calpipe archive --archive DIR add` does, previews included)")
    run.set_defaults(func=run_command, parser=run)

    status = sub.add_parser("status", help="the tasks of a batch output folder and their totals")
    status.add_argument("output_dir", metavar="OUT")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=status_command)
    return batch


class _OverridesParser(argparse.ArgumentParser):
    """Takes ``--steps.<step>.<param>[=]VALUE`` arguments aside (into ``steps_args``) before parsing."""

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        taken, rest, i = [], [], 0
        while i < len(args):
            if args[i].startswith("--steps."):
                taken.append(args[i])
                if "=" not in args[i] and i + 1 < len(args):
                    i += 1
                    taken.append(args[i])
            else:
                rest.append(args[i])
            i += 1
        namespace, extra = super().parse_known_args(rest, namespace)
        namespace.steps_args = taken
        return namespace, extra


def parse_overrides(extra):
    """``--steps.<step>.<param>=VALUE`` (or ``... VALUE``) arguments as {step: {param: value}}."""
    overrides, i = {}, 0
    while i < len(extra):
        arg = extra[i]
        name, eq, value = arg.partition("=")
        parts = name[2:].split(".") if name.startswith("--") else []
        if len(parts) != 3 or parts[0] != "steps" or not all(parts):
            raise CalpipeError(f"unrecognised argument {arg}, expected --steps.<step>.<param>=VALUE")
        if not eq:
            if i + 1 >= len(extra):
                raise CalpipeError(f"{arg} needs a value")
            i += 1
            value = extra[i]
        overrides.setdefault(parts[1], {})[parts[2].replace("-", "_")] = value
        i += 1
    return overrides


def run_command(args):
    from .runner import Options, run_batch

    options = Options(
        inputs=args.inputs, output_dir=args.output_dir, workers=args.workers, scheduler=args.scheduler,
        memory_limit=args.memory_limit, ref_store=args.ref_store, pipeline=args.pipeline, config=args.config,
        overrides=parse_overrides(args.steps_args), retries=args.retries, force=args.force, ingest=args.ingest,
        archive=args.archive,
    )
    return run_batch(options)


def status_command(args):
    if args.steps_args:
        raise CalpipeError(f"unrecognised argument {args.steps_args[0]}")
    from .runner import status

    report = status(args.output_dir)
    if args.json:
        json.dump(report, sys.stdout, indent=1, default=str)
        print()
        return 0
    print(f"{'state':<8} {'kind':<6} {'name':<40} {'tries':>5} {'reserved MB':>12} {'peak MB':>8} {'wall s':>7}  error")
    for row in report["tasks"]:
        reserved = (f"{row['reservation_mb']:.0f} {row['reservation_source'] or ''}".strip()
                    if row["reservation_mb"] else "-")
        peak = f"{row['peak_mb']:.0f}" if row["peak_mb"] else "-"
        wall = f"{row['wall_s']:.1f}" if row["wall_s"] else "-"
        print(f"{row['state']:<8} {row['kind']:<6} {row['name'][:40]:<40} {row['attempts']:>5} {reserved:>12} "
              f"{peak:>8} {wall:>7}  {row['error'] or ''}")
    t = report["totals"]
    print(f"{t['tasks']} task(s): {t['done']} done, {t['failed']} failed, {t['running']} running, "
          f"{t['pending']} pending; {t['wall_s']:.1f} s of task wall time")
    return 0


__all__ = ["parse_overrides", "register"]
