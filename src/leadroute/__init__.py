"""leadroute: rules-based lead scoring and routing."""

__version__ = "0.1.0"
