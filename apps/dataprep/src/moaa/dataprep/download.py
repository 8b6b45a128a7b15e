"""stub"""


def command() -> None:
    """Not yet."""
