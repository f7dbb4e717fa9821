"""Settings, read from REPTREND_* environment variables and validated at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from store.database import default_database_url, normalize_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REPTREND_", extra="ignore")

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy or plain postgresql:// URL; default: a SQLite file under ./var/",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Bodies above this answer 413; 10,000-entry transaction Bundles fit well below it.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    # Until SMART Backend Services lands every client acts for this tenant.
    default_tenant: str = Field(default="default", min_length=1, max_length=64)
    db_pool_size: int = Field(default=10, ge=1, le=100)
    # Single-resource writes (create, update) a process runs at once; more wait their turn
    # on the event loop. A write holds the GIL for most of its time: a few at once keep the
    # core busy while others wait on PostgreSQL, and more only take turns on the GIL, which
    # stretches every one of them (and can draw pool connections beyond db_pool_size, each
    # a new PostgreSQL backend).
    write_concurrency: int = Field(default=4, ge=1, le=100)
    # After start-up, move everything alive to the collector's permanent generation (gc.freeze):
    # a full collection then no longer stalls every request in flight for ~40 ms. Off for
    # processes that build many apps (the test suite), where frozen garbage would pile up.
    gc_freeze: bool = True
    # Bulk $export: where files go (<dir>/<tenant>/<job id>/), where a type's output is split,
    # and how long a silent worker keeps its job before another takes it over.
    export_dir: Path = Path("var") / "exports"
    export_max_file_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    export_lease_seconds: float = Field(default=30.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        url = normalize_url(value)
        if not url.startswith(("sqlite:", "postgresql+psycopg:")):
            raise ValueError("REPTREND_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        return url


@lru_cache(maxsize=1)
def settings_from_environment() -> Settings:
    return Settings()
