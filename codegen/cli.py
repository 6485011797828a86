"""The `gradgen` command: EXPR.py in, a checked gradient module out.

Exit statuses: 0 ok; 1 the numeric check failed (the module stays, to be read);
2 a mistake in the input or the command line (nothing is written); 3 a bug in gradgen.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USER_ERROR, GradgenError

TARGETS = ("python", "c")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: usage + one line, status 2
        self.print_usage(sys.stderr)
        print(f"gradgen: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _dim(text: str) -> tuple[str, int]:
    name, sep, size = text.partition("=")
    if not sep or not name.isidentifier() or not size.isdigit() or int(size) < 1:
        raise argparse.ArgumentTypeError(
            f"--dim takes NAME=SIZE with a positive size, e.g. n=4 (got {text!r})"
        )
    return name, int(size)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="gradgen",
        description="Compile a numpy function into flat, checked reverse-mode gradient code.",
    )
    p.add_argument("expr", metavar="EXPR.py", help="the file holding the forward function(s)")
    p.add_argument("--fn", metavar="NAME", help="trace only this function")
    p.add_argument(
        "--target",
        default="python",
        help="python (default), or c: <stem>_grad.c, .h and the loader <stem>_grad_c.py",
    )
    p.add_argument(
        "--out", default="generated", metavar="DIR", help="output folder (default: generated)"
    )
    p.add_argument(
        "--wrt", metavar="A,B", help="differentiate with respect to these parameters only"
    )
    p.add_argument(
        "--dim",
        action="append",
        type=_dim,
        default=[],
        metavar="NAME=SIZE",
        help="size of a named dim",
    )
    p.add_argument("--no-check", action="store_true", help="skip the numeric gradient check")
    p.add_argument("--no-comments", action="store_true", help="emit no gate comments")
    p.add_argument(
        "--explain",
        action="store_true",
        help="add to each backward line's comment the forward line of your file it comes from",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite an output file gradgen did not write"
    )
    p.add_argument(
        "--passes",
        metavar="LIST",
        help="optimization passes to run: all (default), none, or a comma list of "
        "fold,simplify,fuse,cse,dce",
    )
    p.add_argument(
        "--loops",
        choices=("auto", "keep", "unroll"),
        default="auto",
        help="a `for` over a range: kept as a loop when unrolling it would pass a few "
        "thousand lines (auto), always kept (keep), or unrolled (unroll)",
    )
    p.add_argument(
        "--max-iterations",
        type=_positive,
        metavar="N",
        help="--target c: the bound of a traced `while` loop whose line has no "
        "`# gradgen: max N` (its gradient's tape holds N iterations)",
    )
    p.add_argument("--stats", action="store_true", help="print pass, cost and memory figures")
    p.add_argument(
        "--show",
        choices=("ir", "grad-ir", "code"),
        help="print the traced IR, the gradient IR or the code, and write nothing",
    )
    p.add_argument(
        "--draw",
        metavar="FILE",
        help="draw the function as a circuit with each wire's value and gradient "
        "(.svg, .png, .pdf or .dot), and write nothing else",
    )
    p.add_argument(
        "--at",
        metavar="X=V,...",
        help="the point to draw at: x=-2,y=5 (arrays in brackets: w=[1,2,3]); the rest from "
        "_check_args or a seeded random point",
    )
    p.add_argument(
        "--draw-level",
        choices=("auto", "gates", "lines"),
        default="auto",
        help="one node per gate, or one box per source line (auto: by size)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the check's report as JSON on stdout (the rest goes to stderr)",
    )
    p.add_argument("--version", action="version", version=f"gradgen {__version__}")
    return p


# When set (by `main` run as the command), what a run compiled is kept here until the
# process exits: a large module's graphs (100k nodes) take ~0.4 s to free object by
# object, and the command ends its process without freeing them (os._exit, once its
# output is flushed).
_kept: list | None = None


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    # Imported here so that --help and --version stay fast.
    from codegen import check, passes, pipeline
    from codegen.ir import format_graph
    from codegen.stats import format_stats
    from codegen.highlight import highlight
    from codegen.write import check_writable, write_atomic

    if args.target not in TARGETS:
        raise GradgenError(
            f"unknown --target {args.target!r}", hint=f"choose one of: {', '.join(TARGETS)}"
        )
    wrt = [w.strip() for w in args.wrt.split(",") if w.strip()] if args.wrt else None
    if args.wrt is not None and not wrt:
        raise GradgenError("--wrt names no parameter", hint="e.g. --wrt w,b")
    expr = Path(args.expr)
    out_path = Path(args.out) / f"{expr.stem}_grad.py"
    c_paths: list[Path] = []  # the C target's .c and .h; out_path is then its loader
    if args.target == "c":
        out_path = Path(args.out) / f"{expr.stem}_grad_c.py"
        c_paths = [Path(args.out) / f"{expr.stem}_grad{ext}" for ext in (".c", ".h")]
    if args.json and (args.no_check or args.show or args.draw):
        raise GradgenError(
            "--json prints the check's report", hint="drop --no-check, --show and --draw"
        )
    if args.at is not None and not args.draw:
        raise GradgenError("--at chooses the point of a drawing", hint="add --draw FILE")
    inspecting = args.show or args.draw
    if not inspecting:
        check_writable([out_path, *c_paths], args.force)

    try:
        enabled = passes.parse(args.passes) if args.passes is not None else None
    except ValueError as e:
        raise GradgenError(str(e)) from None
    compiled = pipeline.compile_file(
        expr,
        args.fn,
        wrt,
        dict(args.dim),
        comments=not args.no_comments,
        enabled_passes=enabled,
        target=args.target,
        explain=args.explain,
        # a circuit is drawn gate by gate: its loops unrolled
        loops="unroll" if args.draw and args.loops == "auto" else args.loops,
        max_iterations=args.max_iterations,
    )
    if _kept is not None:
        _kept.append(compiled)
    if args.stats:
        print(format_stats(compiled))
    from codegen.format import black_limit

    if compiled.source.count("\n") > black_limit():
        print(
            f"note: the module has {compiled.source.count(chr(10))} lines, more than black's limit "
            f"of {black_limit()} (GRADGEN_BLACK_MAX_LINES): it keeps the emitter's layout",
            file=sys.stderr,
        )
    for dim, size in compiled.specialized.items():
        print(
            f"note: the code depends on the size of {dim!r}, so it is specialized to {dim}={size} "
            f"and checks its inputs' shapes (first such line: {compiled.reasons[dim]})",
            file=sys.stderr,
        )

    for t in compiled.functions:
        for note in t.forward.notes:
            print(f"note: {note}", file=sys.stderr)

    if args.show == "code":
        kind = "c" if compiled.files is not None else "python"
        text = compiled.files[".c"] if compiled.files is not None else compiled.source
        sys.stdout.write(highlight(text, kind, sys.stdout))
        return EXIT_OK
    if args.show:
        for t in compiled.functions:
            if args.show == "ir":
                text = format_graph(t.forward, f"# {t.spec.name}: traced")
            else:
                graph = t.value_and_grad or t.vjp
                text = format_graph(graph, f"# {t.spec.name}: value and gradients, optimized")
            print(highlight(text + "\n", "ir", sys.stdout), end="")
        return EXIT_OK
    if args.draw:
        return _draw(compiled, Path(args.draw), args.at, args.draw_level)
    points = {}  # the points of the module's _check_args(rng), validated before writing
    if not args.no_check:
        points = {t.spec.name: check.user_points(t.spec) for t in compiled.functions}

    # with --json, stdout is the report alone: what the command says goes to stderr
    say = functools.partial(print, file=sys.stderr) if args.json else print
    if compiled.files is not None:  # the C target: the C first, then its loader
        for path, ext in zip(c_paths, (".c", ".h")):
            write_atomic(path, compiled.files[ext])
            say(f"wrote {path}")
        write_atomic(out_path, compiled.files["_c.py"])
    else:
        write_atomic(out_path, compiled.source)
    say(f"wrote {out_path}")
    if compiled.files is not None and not args.no_check:
        try:  # compiled here, so that a missing compiler is one clear message
            check.import_path(out_path)
        except ImportError as e:
            raise GradgenError(str(e), hint="or pass --no-check to only write the files") from None
    if args.no_check:
        return EXIT_OK
    module = check.import_path(out_path)
    status = EXIT_OK
    unconfirmed = []
    reports = []
    for t in compiled.functions:
        report = check.check_function(module, t.spec, t.forward, t.wrt, points=points[t.spec.name])
        reports.append(report)
        say(check.format_report(report))
        if report.failed:
            status = EXIT_CHECK_FAILED
        unconfirmed += [f"{t.spec.name}: {name}" for name in report.inconclusive]
    if status != EXIT_OK:
        say(f"check FAILED: {out_path} is written, for reading")
    elif unconfirmed:
        # not a failure (status 0), but never the word ok: the gradients were not confirmed
        say(
            f"not confirmed: the check could not confirm {', '.join(unconfirmed)} at the "
            f"arguments tried (central differences did not converge there); {out_path} is "
            f"written. Choose the points with {check.CHECK_ARGS}(rng) in {expr.name}"
        )
    else:
        say("ok")
    if args.json:
        print(json.dumps(check.report_json(reports, str(out_path)), indent=2))
    return status


def _draw(compiled, path: Path, at: str | None, level: str) -> int:
    """--draw: each function's circuit at the point --at gives (one file per function
    when the input file has several: FILE's stem gets the function's name)."""
    from codegen import draw

    point = draw.parse_at(at)
    source = compiled.loaded.path.read_text().splitlines()
    several = len(compiled.functions) > 1
    for t in compiled.functions:
        target = path.with_stem(f"{path.stem}_{t.spec.name}") if several else path
        args, caption = draw.point(t.spec, t.forward, point)
        text = draw.circuit(t.forward, args, caption, level, source)
        print(draw.render(text, target))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a user's mistake is one paragraph on stderr, never a traceback."""
    global _kept
    command = argv is None  # (called with arguments: from Python, which goes on running)
    _kept = [] if command else None
    try:
        status = run(argv)
    except GradgenError as e:
        print(f"gradgen: {e.render()}", file=sys.stderr)
        status = EXIT_USER_ERROR
    except KeyboardInterrupt:
        status = 130
    except Exception as e:  # a bug in gradgen: say so plainly; the traceback on request
        if os.environ.get("GRADGEN_DEBUG"):
            raise
        print(
            f"gradgen: internal error ({type(e).__name__}: {e}); this is a bug in gradgen, "
            "not in your file. Run again with GRADGEN_DEBUG=1 for the traceback, and report it.",
            file=sys.stderr,
        )
        status = EXIT_INTERNAL
    if not command:
        sys.exit(status)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # (the graphs in _kept go with the process)


if __name__ == "__main__":
    main()
