"""A fake provider and delivery host for `httpx.MockTransport`, scripted per test."""

from __future__ import annotations

import base64
import io
import json
import random
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
from PIL import Image

PROVIDER_URL = "https://api.us1.bfl.ai"
DELIVERY = "https://delivery.us1.bfl.ai"


def png(size=(64, 48), color=(200, 30, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode != "L" else 255).save(buffer, format="PNG")
    return buffer.getvalue()


def truncated_png(size=(64, 48)) -> bytes:
    """A noise PNG cut in half: its header reads, its pixels do not decode."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3)).save(
        buffer, format="PNG"
    )
    data = buffer.getvalue()
    return data[: len(data) // 2]


@dataclass
class FakeProvider:
    """Answers submit and get_result; tests script statuses and failures."""

    submit_status: int = 200
    submit_headers: dict[str, str] = field(default_factory=dict)
    status: str = "Ready"
    result_bytes: bytes = field(default_factory=lambda: png(color=(10, 200, 10)))
    expired_downloads: int = 0
    submits: list[dict] = field(default_factory=list)
    polls: int = 0
    downloads: int = 0

    def provider(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            if self.submit_status == 599:
                raise httpx.ConnectError("refused", request=request)
            self.submits.append(json.loads(request.content))
            if self.submit_status != 200:
                return httpx.Response(
                    self.submit_status,
                    json={"detail": "scripted failure"},
                    headers=self.submit_headers,
                )
            task_id = f"task-{len(self.submits)}"
            return httpx.Response(
                200,
                json={
                    "id": task_id,
                    "polling_url": f"{PROVIDER_URL}/v1/get_result?id={task_id}",
                    "cost": 4.5,
                },
            )
        self.polls += 1
        task_id = parse_qs(request.url.query.decode())["id"][0]
        result = (
            {"sample": f"{DELIVERY}/{task_id}.png?sig=s{self.polls}", "seed": 7}
            if self.status == "Ready"
            else None
        )
        return httpx.Response(
            200, json={"id": task_id, "status": self.status, "result": result, "details": None}
        )

    def delivery(self, request: httpx.Request) -> httpx.Response:
        self.downloads += 1
        if self.expired_downloads:
            self.expired_downloads -= 1
            return httpx.Response(403)
        return httpx.Response(200, content=self.result_bytes, headers={"content-type": "image/png"})

    def provider_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.provider)

    def delivery_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.delivery)


def decoded(body: dict, name: str) -> bytes:
    return base64.b64decode(body[name])
