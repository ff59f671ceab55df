"""shadowgate: mirror production inference traffic to a candidate server and judge the difference."""

__version__ = "0.1.0"
