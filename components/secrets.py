"""The Tiingo token in Secrets Manager: the functions receive only the secret's ARN."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.naming import kebab


class TiingoSecret(pulumi.ComponentResource):
    secret_arn: pulumi.Output[str]

    def __init__(
        self, name: str, *, token: pulumi.Output[str], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("stock-pipeline:secrets:TiingoSecret", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            # A prefix: a deleted secret's name stays reserved for its recovery window.
            name_prefix=f"stock-pipeline/{kebab(pulumi.get_stack())}/tiingo-api-token-",
            description="Tiingo API token (SecretString = bare token), read by the stock-pipeline Lambdas",
            recovery_window_in_days=7,
            opts=child,
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-version",
            secret_id=secret.id,
            # Output.secret again: encrypted in state even if the caller passed a plain Output.
            secret_string=pulumi.Output.secret(token),
            opts=child,
        )
        self.secret_arn = secret.arn
        self.register_outputs({"secret_arn": self.secret_arn})
