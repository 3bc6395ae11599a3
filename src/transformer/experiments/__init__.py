"""What the experiment scripts share: tasks, training, metrics, probes, plots and the CLI.

The scripts in ``experiments/`` are thin wrappers around :func:`cli.main`. They use stages
only through the stage contract (``transformer.get_stage``), so a new stage needs no change
here.
"""
