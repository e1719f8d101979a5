"""Fuzzing the batch decoder + stream service and the WSO2 log parser (see targets.py)."""
