"""`http:webhook`: POST a templated JSON body (the alert by default) with TLS options and retries
on connection errors, 429 and 5xx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from engine.response.actions.base import Action, Param, register_action
from engine.response.errors import ActionError


@register_action
class Webhook(Action):
    name = "http:webhook"
    summary = "POST a templated JSON body (default: the alert) to a URL, with TLS and retries."
    params = (
        Param("url", "string", "http:// or https:// URL", required=True),
        Param("body", "any", "JSON body; ${field} placeholders are rendered (default: the alert)"),
        Param("headers", "object", "extra request headers", {}),
        Param("ca_file", "string", "CA bundle to verify the server with", None),
        Param("insecure", "boolean", "skip TLS verification", False),
        Param("timeout", "number", "seconds per attempt", 5.0),
        Param("retries", "integer", "extra attempts on errors, 429 and 5xx", 2),
    )

    def __init__(self) -> None:
        import requests

        self._local = threading.local()
        self._requests = requests

    def _session(self) -> Any:
        # requests.Session is not thread-safe: one per worker thread, kept alive between alerts.
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
        return session

    def run(self, params: dict[str, Any], alert: Mapping[str, Any]) -> dict[str, Any]:
        url = str(params["url"])
        if not url.startswith(("http://", "https://")):
            raise ActionError(f"invalid webhook URL {url!r}", "use http:// or https://")
        body = params["body"] if params["body"] is not None else dict(alert)
        data = json.dumps(body, separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "falconet",
            **params["headers"],
        }
        verify: Any = False if params["insecure"] else (params["ca_file"] or True)
        retries = int(params["retries"])
        last = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)))
            try:
                response = self._session().post(
                    url, data=data, headers=headers, verify=verify, timeout=float(params["timeout"])
                )
            except self._requests.RequestException as error:
                last = str(error)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code >= 400:
                raise ActionError(f"{url} refused the webhook: HTTP {response.status_code}")
            return {"url": url, "status": response.status_code, "attempts": attempt + 1}
        raise ActionError(f"webhook to {url} failed after {retries + 1} attempts: {last}")
