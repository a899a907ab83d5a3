"""Gradient error versus solver effort: how fast does each backward method approach the true gradient?

The experiment is ``rbp.experiments.gradient_error``, installed with rbp (its docstring and
docs/experiments.md give the question, the protocol and the measured results).
This script runs it: ``python experiments/gradient_error.py [options]`` is
``rbp run gradient_error [options]``; ``--help`` lists the options.
"""

import sys

from rbp.cli import script_main

EXPERIMENT = "gradient_error"

if __name__ == "__main__":
    sys.exit(script_main(EXPERIMENT))
