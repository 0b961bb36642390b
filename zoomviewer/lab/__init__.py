"""The lab: training (train.py), the benchmark protocol (evaluate.py) and the bench."""
