"""Recurrent backprop OCR: does a fixed-point net trained by recurrent backprop match an MLP, and at what solver cost?

The experiment is ``rbp.experiments.recurrent_ocr``, installed with rbp (its docstring and
docs/experiments.md give the question, the protocol and the measured results).
This script runs it: ``python experiments/recurrent_ocr.py [options]`` is
``rbp run recurrent_ocr [options]``; ``--help`` lists the options.
"""

import sys

from rbp.cli import script_main

EXPERIMENT = "recurrent_ocr"

if __name__ == "__main__":
    sys.exit(script_main(EXPERIMENT))
