"""CodeParrot toolkit: streaming preprocessing of GitHub code dumps."""

__version__ = "0.1.0"
