"""`python cli.py EXPR.py ...` from a checkout: the `gradgen` command without installing.

The command lives in `codegen/cli.py`; this shim keeps the top-level entry the layout asks
for without installing a top-level `cli` module into site-packages.
"""

from codegen.cli import main

if __name__ == "__main__":
    main()
