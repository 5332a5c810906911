"""Shared runtime library of the stock-pipeline Lambdas (copied into both images)."""
