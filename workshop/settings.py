"""The workshop's settings: the `WORKSHOP_` environment variables `make workshop` sets for the hub, and the
hub for its board service and for the servers it spawns, read here.

The world learners load is the course's own variable (LATENT_GRADIENTS_WORLD, `part_utils/settings.py`): one
variable chooses the world wherever the course runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from part_utils import settings as course_settings

DIRECTORY_ENV = "WORKSHOP_DIR"
COURSE_ID_ENV = "WORKSHOP_COURSE_ID"


def directory() -> Path:
    """WORKSHOP_DIR: the workshop's folder (the exchange, the passwords, the hub's and the board's state)."""
    return Path(os.environ[DIRECTORY_ENV]).resolve()


def exchange() -> Path:
    """nbgrader's exchange, shared by the instructor and the learners."""
    return directory() / "exchange"


def course_id() -> str:
    """WORKSHOP_COURSE_ID: nbgrader's course id, which the hub passes to learners' servers."""
    return os.environ[COURSE_ID_ENV]


@dataclass(frozen=True)
class WorkshopSettings:
    directory: Path  # WORKSHOP_DIR
    roster: Path  # WORKSHOP_ROSTER: the class's roster
    port: int  # WORKSHOP_PORT: the hub's port; its API, the proxy's API and the board take the next three
    public: bool  # WORKSHOP_PUBLIC=1: serve every interface, over HTTPS
    tls_cert: str  # WORKSHOP_TLS_CERT
    tls_key: str  # WORKSHOP_TLS_KEY
    world: str  # LATENT_GRADIENTS_WORLD, else the toy world


def read() -> WorkshopSettings:
    return WorkshopSettings(
        directory=directory(),
        roster=Path(os.environ["WORKSHOP_ROSTER"]),
        port=int(os.environ.get("WORKSHOP_PORT") or 8000),
        public=os.environ.get("WORKSHOP_PUBLIC") == "1",
        tls_cert=os.environ.get("WORKSHOP_TLS_CERT", ""),
        tls_key=os.environ.get("WORKSHOP_TLS_KEY", ""),
        world=course_settings.world("toy"),
    )
