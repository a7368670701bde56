"""`aws:lambda`: invoke an AWS Lambda function with the alert (or a templated payload), through
boto3 and its usual credential chain (environment, profile, instance role)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError


@register_action
class InvokeLambda(Action):
    name = "aws:lambda"
    summary = "Invoke an AWS Lambda function with the alert (boto3)."
    params = (
        Param("function", "string", "function name or ARN", required=True),
        Param("payload", "any", "JSON payload; ${field} placeholders rendered (default: alert)"),
        Param(
            "invocation_type",
            "string",
            "RequestResponse (wait) or Event (async)",
            "RequestResponse",
        ),
        Param("qualifier", "string", "version or alias", None),
        Param("region", "string", "AWS region (default: boto3's configuration)", None),
        Param("endpoint_url", "string", "API endpoint (VPC endpoint, local stand-in)", None),
    )

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str | None], Any] = {}
        self._lock = threading.Lock()

    def _client(self, region: str | None, endpoint: str | None) -> Any:
        with self._lock:
            client = self._clients.get((region, endpoint))
            if client is None:
                import boto3

                client = boto3.client("lambda", region_name=region, endpoint_url=endpoint)
                self._clients[(region, endpoint)] = client
            return client

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        payload = params["payload"] if params["payload"] is not None else dict(alert)
        request: dict[str, Any] = {
            "FunctionName": str(params["function"]),
            "InvocationType": str(params["invocation_type"]),
            "Payload": json.dumps(payload, default=str).encode(),
        }
        if params["qualifier"]:
            request["Qualifier"] = str(params["qualifier"])
        try:
            response = self._client(params["region"], params["endpoint_url"]).invoke(**request)
        except (BotoCoreError, ClientError) as error:
            raise ActionError(f"lambda {params['function']}: {error}") from error
        result = (
            response["Payload"].read().decode("utf-8", "replace") if "Payload" in response else ""
        )
        if response.get("FunctionError"):
            raise ActionError(f"lambda {params['function']} failed: {result[:500]}")
        return {
            "function": params["function"],
            "status": response.get("StatusCode"),
            "response": result[:4096],
        }
