"""Bodies of ``GET /v1/health``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["BrokerOut", "DatabaseOut", "HealthOut"]


class DatabaseOut(BaseModel):
    ok: bool
    error: str | None = None


class BrokerOut(BaseModel):
    broker: str = Field(description="the broker URL without its password, or 'in-process'")
    ok: bool
    queued: int | None = Field(default=None, description="messages waiting in the queue")
    unacknowledged: int | None = Field(default=None, description="taken by a worker, not finished")
    workers: list[str] = Field(default_factory=list, description="workers that answered a ping")
    error: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "unhealthy"]
    database: DatabaseOut
    broker: BrokerOut
    queue_depth: int | None = Field(
        None, description="background work waiting (broker messages, or in-process jobs)"
    )
    products: dict[str, int] = Field(default_factory=dict, description="products per status")
    oldest_pending_s: float | None = Field(
        None, description="how long the product waiting longest for a worker has waited"
    )
    active_model: str | None = None
    problems: list[str] = Field(default_factory=list, description="why the status is unhealthy")
