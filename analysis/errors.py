"""The one error type a person can cause: bad input or impossible options."""


class AnalysisError(Exception):
    """Raised with a message naming the problem; the CLI turns it into a click error."""
