"""The Tiingo token: from Secrets Manager in AWS (read once per cold start), from the env locally."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resolve_token(env: Mapping[str, str], *, secrets_client: Any = None) -> str:
    """TIINGO_SECRET_ARN (SecretString is the bare token) wins over TIINGO_API_TOKEN.

    Errors name the variable or the secret ARN, never the value.
    """
    arn = env.get("TIINGO_SECRET_ARN", "").strip()
    if arn:
        if secrets_client is None:
            import boto3

            secrets_client = boto3.client("secretsmanager")
        try:
            token = secrets_client.get_secret_value(SecretId=arn).get("SecretString") or ""
        except secrets_client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ValueError(f"cannot read the Tiingo token from secret {arn}: {code}") from None
        if not token.strip():
            raise ValueError(f"secret {arn} has an empty SecretString; store the bare Tiingo token")
        return token.strip()
    token = env.get("TIINGO_API_TOKEN", "").strip()
    if token:
        return token
    raise ValueError("no Tiingo token: set TIINGO_SECRET_ARN (in AWS) or TIINGO_API_TOKEN (locally)")
