"""Local-only tooling (CLI, Tiingo simulator); never copied into the Lambda images."""
