from tests.local.harness import cli

__all__ = ["cli"]
