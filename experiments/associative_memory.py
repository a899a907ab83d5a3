"""Associative memory: which gradient method trains a recurrent net to complete corrupted patterns fastest?

The experiment is ``rbp.experiments.associative_memory``, installed with rbp (its docstring and
docs/experiments.md give the question, the protocol and the measured results).
This script runs it: ``python experiments/associative_memory.py [options]`` is
``rbp run associative_memory [options]``; ``--help`` lists the options.
"""

import sys

from rbp.cli import script_main

EXPERIMENT = "associative_memory"

if __name__ == "__main__":
    sys.exit(script_main(EXPERIMENT))
