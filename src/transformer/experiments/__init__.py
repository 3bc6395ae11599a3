"""The experiments: tasks, metrics, probes, plots, and the command lines of the scripts.

The scripts in ``experiments/`` are thin wrappers around this package. They build every
stage through the stage contract (``transformer.get_stage``) and train through
``transformer.lm``'s one loop, so a new stage needs no change here.
"""
