"""The stock-pipeline Pulumi components: one concept per module, wired together by __main__.py."""
