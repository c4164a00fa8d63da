"""ablate's version, on the bottom floor so that any module may name it (the trainer stores it
with each trial's environment, the CLI prints it) without importing the package's facade."""

__version__ = "0.1.0"
