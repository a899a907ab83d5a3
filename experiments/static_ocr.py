"""Static backprop OCR: how well does an MLP read printed characters in unseen typefaces, and handwritten digits?

The experiment is ``rbp.experiments.static_ocr``, installed with rbp (its docstring and
docs/experiments.md give the question, the protocol and the measured results).
This script runs it: ``python experiments/static_ocr.py [options]`` is
``rbp run static_ocr [options]``; ``--help`` lists the options.
"""

import sys

from rbp.cli import script_main

EXPERIMENT = "static_ocr"

if __name__ == "__main__":
    sys.exit(script_main(EXPERIMENT))
