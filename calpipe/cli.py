"""The ``calpipe`` command: demo, simulate, refs (and the subcommands other modules register)."""

import argparse
import os
import sys
import time
from pathlib import Path

from calpipe import compile_notice
from calpipe.errors import EXIT_STATUS, CalpipeError, InputError, describe_os_error


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    command = getattr(args, "command", "calpipe")
    try:
        return args.func(args) or 0
    except OSError as err:
        print(f"{command}: error: {describe_os_error(err)}", file=sys.stderr)
        return EXIT_STATUS
    except (CalpipeError, ValueError, LookupError) as err:
        print(f"{command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_STATUS
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130


def build_parser():
    parser = argparse.ArgumentParser(prog="calpipe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = commands.add_parser("demo", help="simulate an exposure, calibrate it, compare with the truth")
    demo.add_argument("--workdir", default="calpipe-demo", help="working folder (default: %(default)s)")
    demo.add_argument("--size", type=int, default=1024, help="detector size in pixels (default: %(default)s)")
    demo.add_argument("--nresultants", type=int, default=6, help="resultants (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=run_demo)

    sim = commands.add_parser("simulate", help="write a raw exposure, its reference store and its truth")
    sim.add_argument("--out", required=True, help="output folder")
    sim.add_argument("--size", type=int, default=4096, help="detector size incl. border (default: %(default)s)")
    sim.add_argument("--nresultants", type=int, help="resultants of the default uneven pattern (default: 6)")
    sim.add_argument("--read-pattern",
                     help="uneven6, skip6, 3, 8x8, 24, 40 or an explicit list such as '1;2,3;4-7;8' "
                          "(resultants separated by ';'); replaces --nresultants")
    sim.add_argument("--cosmic-ray-fraction", type=float, default=0.02,
                     help="expected cosmic-ray hit pixels per science pixel (default: %(default)s)")
    sim.add_argument("--multi-hit-fraction", type=float, default=0.0,
                     help="fraction of hit pixels hit once or twice more (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sim.add_argument("--nexposures", type=int, default=1,
                     help="exposures of one field in a dither pattern, with their association file "
                          "(default: %(default)s)")
    sim.add_argument("--program", type=int, default=1,
                     help="program number (1-99999) in the exposures' names and metadata (default: %(default)s)")
    sim.add_argument("--fully-saturated", action="store_true", help="saturate every resultant of every pixel")
    sim.add_argument("--format", choices=["calpipe", "roman"], default="calpipe",
                     help="file format of the exposure and references: calpipe's, or the Roman mission's "
                          "(needs calpipe[roman]) (default: %(default)s)")
    sim.set_defaults(func=run_simulate)

    comp = commands.add_parser("compile", help="compile the pipeline's kernels ahead of a first run, on every core")
    comp.add_argument("kernels", nargs="*", metavar="KERNELS",
                      help="only these: likely, optimal, saturation, linearity, refpix, catalog (default: all)")
    comp.add_argument("--processes", type=int, help="processes compiling at once (default: one per core)")
    comp.set_defaults(func=run_compile)

    refs = commands.add_parser("refs", help="manage and query a reference store")
    refs.add_argument("--store", help="store folder (default: $CALPIPE_REFS)")
    ref_commands = refs.add_subparsers(title="refs commands", metavar="ACTION")
    ref_list = ref_commands.add_parser("list", help="list the store's files")
    ref_list.add_argument("--reftype", help="only this reference type")
    ref_list.set_defaults(func=run_refs_list)
    ref_best = ref_commands.add_parser("best", help="the best reference files for an exposure")
    ref_best.add_argument("exposure", help="an exposure file (any calpipe exposure model)")
    ref_best.add_argument("--reftype", action="append", help="reference type (repeatable; default: all)")
    ref_best.add_argument("--select", choices=["before", "after", "nearest"], default="before")
    ref_best.set_defaults(func=run_refs_best)
    ref_add = ref_commands.add_parser("add", help="copy reference files into the store and index them")
    ref_add.add_argument("files", nargs="+")
    ref_add.set_defaults(func=run_refs_add)
    ref_import = ref_commands.add_parser(
        "import", help="index every reference file under a folder (e.g. a mission reference cache) in place")
    ref_import.add_argument("folder")
    ref_import.set_defaults(func=run_refs_import)

    for register in _registered_commands():
        register(commands)
    _name_commands(parser)
    return parser


def _name_commands(parser):
    """Each subcommand knows its full name (``calpipe db status``), for its error lines."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.set_defaults(command=sub.prog)
                _name_commands(sub)


def _registered_commands():
    """Subcommands owned by other parts of calpipe."""
    from calpipe.archive import commands as archive_commands
    from calpipe.associations import commands as asn_commands
    from calpipe.batch import commands as batch_commands
    from calpipe.model import commands as model_commands
    from calpipe.training import commands as db_commands

    return [asn_commands.register, db_commands.register, batch_commands.register,
            archive_commands.register, model_commands.register]


# -- compile --------------------------------------------------------------------------------
def run_compile(args):
    from calpipe import precompile

    if args.processes is not None and args.processes < 1:
        raise InputError(f"--processes {args.processes}: expected at least 1")
    groups = precompile.plan(args.kernels or list(precompile.JOBS), args.processes or os.cpu_count() or 1)
    print(f"compiling kernels on {len(groups)} process(es): {'; '.join(', '.join(g) for g in groups)}",
          flush=True)
    wall = precompile.precompile(groups)
    print(f"done in {wall:.1f} s: later runs load them from Numba's on-disk cache")
    return 0


# -- simulate -------------------------------------------------------------------------------
def _progress(message):
    print(f"  {message}", flush=True)


def run_simulate(args):
    from calpipe.simulate import check_cosmic_rays, parse_read_pattern, simulate, simulate_dithered

    if not 1 <= args.program <= 99999:
        raise CalpipeError(f"--program {args.program}: expected a number from 1 to 99999")
    compile_notice.install("stdout")
    t0 = time.perf_counter()
    check_cosmic_rays(args.cosmic_ray_fraction, args.multi_hit_fraction)
    pattern = None
    if args.read_pattern is not None:
        pattern = parse_read_pattern(args.read_pattern)
        if args.nresultants is not None and args.nresultants != len(pattern):
            raise InputError(f"--nresultants {args.nresultants} disagrees with --read-pattern "
                             f"({len(pattern)} resultants); give one of them")
    nresultants = 6 if args.nresultants is None else args.nresultants
    options = dict(size=args.size, nresultants=nresultants, read_pattern=pattern, seed=args.seed,
                   program=args.program, fully_saturated=args.fully_saturated,
                   cosmic_ray_fraction=args.cosmic_ray_fraction,
                   multi_hit_fraction=args.multi_hit_fraction, progress=_progress)
    if args.format == "roman":
        if args.nexposures != 1:
            raise CalpipeError("simulate: --format roman writes one exposure (--nexposures 1)")
        from calpipe.simulate.roman_files import simulate_roman

        result = simulate_roman(Path(args.out), **options)
        exposures = [result]
    elif args.nexposures != 1:
        result = simulate_dithered(Path(args.out), args.nexposures, **options)
        exposures = result.exposures
    else:
        result = simulate(Path(args.out), **options)
        exposures = [result]
    for exposure in exposures:
        print(f"raw exposure: {exposure.uncal}")
        print(f"truth:        {exposure.truth}")
    if args.nexposures != 1:
        print(f"association:  {result.association}")
    print(f"ref. catalog: {result.refcat}")
    print(f"references:   {result.refs}  (export CALPIPE_REFS={result.refs})")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


# -- refs -----------------------------------------------------------------------------------
def _store(args):
    from calpipe.references import find_store

    return find_store(args.store)


def run_refs_list(args):
    entries = [e for e in _store(args).entries() if not args.reftype or e["reftype"] == args.reftype]
    print(f"{'reftype':<11} {'instrument':<10} {'detector':<8} {'element':<8} {'useafter':<23} path")
    for e in entries:
        print(
            f"{e['reftype']:<11} {e['instrument']:<10} {e['detector']:<8} "
            f"{e['optical_element'] or '-':<8} {e['useafter']:<23} {e['path']}"
        )
    return 0


def run_refs_best(args):
    from calpipe import datamodels

    store = _store(args)
    with datamodels.open(args.exposure) as model:
        meta = model.meta.to_dict()
    reftypes = args.reftype or sorted({e["reftype"] for e in store.entries()})
    for reftype in reftypes:
        print(f"{reftype:<11} {store.best(reftype, meta, args.select)}")
    return 0


def _store_to_write(args, action):
    from calpipe.references import RefStore

    path = args.store or os.environ.get("CALPIPE_REFS")
    if not path:
        raise CalpipeError(f"refs {action} needs --store or CALPIPE_REFS")
    return RefStore(path)


def run_refs_add(args):
    for entry in _store_to_write(args, "add").add(args.files):
        print(f"added {entry['reftype']:<11} {entry['path']}")
    return 0


def run_refs_import(args):
    def report(path, message):
        print(f"calpipe refs import: {message}", file=sys.stderr)

    store = _store_to_write(args, "import")
    added, failed = store.import_tree(args.folder, report)
    for entry in added:
        print(f"indexed {entry['reftype']:<11} {entry['detector']:<6} {entry['useafter']}  {entry['path']}")
    print(f"{len(added)} reference files indexed in {store.path}" + (f", {failed} unreadable" if failed else ""))
    return 1 if failed else 0


# -- demo -----------------------------------------------------------------------------------
def run_demo(args):
    import asdf

    from calpipe import datamodels
    from calpipe.pipelines import ExposurePipeline
    from calpipe.simulate import simulate
    from calpipe.truth import compare, compare_catalog

    compile_notice.install("stdout")
    work = Path(args.workdir)
    print(f"1. Simulating a {args.size}x{args.size} exposure with {args.nresultants} resultants in {work}/")
    sim = simulate(work, size=args.size, nresultants=args.nresultants, seed=args.seed, progress=_progress)
    out = work / "out"
    command = [str(sim.uncal), "--output-dir", str(out), "--ref-store", str(sim.refs),
               f"--steps.tweakreg.abs_refcat={sim.refcat}", "--log-level", "WARNING"]
    print(f"2. Running: strun exposure_pipeline {' '.join(command)}")
    t0 = time.perf_counter()
    ExposurePipeline.from_cmdline(["exposure_pipeline", *command])
    wall = time.perf_counter() - t0
    root = ExposurePipeline.remove_suffix(sim.uncal.stem)[0]
    cal_path = out / f"{root}_cal.asdf"
    with datamodels.open(cal_path) as cal, asdf.open(sim.truth, lazy_load=False) as truth:
        resources = cal.meta.resources.to_dict()
        status = cal.meta.cal_step.to_dict()
        stats = compare(cal, truth.tree)
        sky = compare_catalog(cal, truth.tree)
        tweakreg = cal.meta.cal_step.tweakreg
    print(f"3. Steps ({wall:.1f} s in all, including start-up):")
    for name in ExposurePipeline.step_defs:
        if name in resources:
            usage = resources[name]
            print(
                f"   {name:<15} {status.get(name, '?'):<9} {usage['wall_seconds']:7.2f} s"
                f"   peak RSS {usage['peak_rss_mb']:7.0f} MB"
            )
    print(f"4. Output: {cal_path}")
    print("5. Compared with the truth:")
    print(
        f"   clean pixels: {stats['clean_pixels']}, (cal - truth) / err: median "
        f"{stats['median_pull']:+.3f}, robust std {stats['robust_std_pull']:.3f} (ideal 0 and 1)"
    )
    print(
        f"   saturated pixels flagged: {stats['saturated_flagged']:.1%} of {stats['saturated_pixels']}; "
        f"cosmic-ray pixels flagged: {stats['jumps_flagged']:.1%} of {stats['jump_pixels']}, "
        f"{stats['jump_pixels_within_5_sigma']:.1%} within 5 sigma of the truth"
    )
    print(
        f"   catalog: {sky['detections']} sources, {sky['matched']} of {sky['stars']} stars matched; "
        f"complete to {sky['completeness_snr20']:.0%} above S/N 20; aperture flux / truth "
        f"{sky['median_flux_ratio']:.3f} (median of {sky['isolated_stars']} isolated stars)"
    )
    if "shift_residual_mas" in sky:
        print(
            f"   tweakreg {tweakreg}: catalog positions {sky['median_sep_mas']:.1f} mas from the truth "
            f"(median); pointing error recovered to {sky['shift_residual_mas']:.1f} mas and "
            f"{sky['roll_residual_arcsec']:.1f} arcsec of roll"
        )
    else:
        print(f"   tweakreg {tweakreg}: {cal.meta.wcs_fit_results.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
