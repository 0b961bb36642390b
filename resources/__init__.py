"""Bundled data: the sample photo (Kodak kodim23, free to bundle) and the shipped weights."""
