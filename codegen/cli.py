"""The `gradgen` command: EXPR.py in, a checked gradient module out.

Exit statuses: 0 ok; 1 the numeric check failed (the module stays, to be read);
2 a mistake in the input or the command line (nothing is written); 3 a bug in gradgen.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import EXIT_CHECK_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USER_ERROR, GradgenError

TARGETS = ("python",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: usage + one line, status 2
        self.print_usage(sys.stderr)
        print(f"gradgen: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


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
    p.add_argument("--target", default="python", help="python (default)")
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
        "--force", action="store_true", help="overwrite an output file gradgen did not write"
    )
    p.add_argument(
        "--passes",
        metavar="LIST",
        help="optimization passes to run: all (default), none, or a comma list of "
        "fold,simplify,fuse,cse,dce",
    )
    p.add_argument("--stats", action="store_true", help="print pass, cost and memory figures")
    p.add_argument(
        "--show",
        choices=("ir", "grad-ir", "code"),
        help="print the traced IR, the gradient IR or the code, and write nothing",
    )
    p.add_argument("--version", action="version", version=f"gradgen {__version__}")
    return p


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    # Imported here so that --help and --version stay fast.
    from codegen import check, passes, pipeline
    from codegen.ir import format_graph
    from codegen.stats import format_stats
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
    if not args.show:
        check_writable([out_path], args.force)

    try:
        enabled = passes.parse(args.passes) if args.passes is not None else None
    except ValueError as e:
        raise GradgenError(str(e)) from None
    compiled = pipeline.compile_file(
        expr, args.fn, wrt, dict(args.dim), comments=not args.no_comments, enabled_passes=enabled
    )
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

    if args.show == "code":
        sys.stdout.write(compiled.source)
        return EXIT_OK
    if args.show:
        for t in compiled.functions:
            if args.show == "ir":
                print(format_graph(t.forward, f"# {t.spec.name}: traced"))
            else:
                graph = t.value_and_grad or t.vjp
                print(format_graph(graph, f"# {t.spec.name}: value and gradients, optimized"))
        return EXIT_OK

    write_atomic(out_path, compiled.source)
    print(f"wrote {out_path}")
    if args.no_check:
        return EXIT_OK
    module = check.import_path(out_path)
    status = EXIT_OK
    for t in compiled.functions:
        report = check.check_function(module, t.spec, t.forward, t.wrt)
        print(check.format_report(report))
        if not report.ok:
            status = EXIT_CHECK_FAILED
    print("ok" if status == EXIT_OK else f"check FAILED: {out_path} is written, for reading")
    return status


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a user's mistake is one paragraph on stderr, never a traceback."""
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
    sys.exit(status)


if __name__ == "__main__":
    main()
