"""llenhance: turn dark, noisy photos into clean, well-lit ones."""

__version__ = "0.1.0"
