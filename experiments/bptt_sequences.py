"""Full vs truncated backpropagation through time on classic sequence tasks.

The experiment is ``rbp.experiments.bptt_sequences``, installed with rbp (its docstring and
docs/experiments.md give the question, the protocol and the measured results).
This script runs it: ``python experiments/bptt_sequences.py [options]`` is
``rbp run bptt_sequences [options]``; ``--help`` lists the options.
"""

import sys

from rbp.cli import script_main

EXPERIMENT = "bptt_sequences"

if __name__ == "__main__":
    sys.exit(script_main(EXPERIMENT))
