"""The web console's table: console users with their role and argon2 password hash.

A user logs in to the console with a username and password. ``role`` is one of
``agent < supervisor < manager < admin``; an agent account is tied to the ACD agent it
speaks for by ``agent_id``. Passwords are never stored, only their argon2id hash
(:mod:`dialer.web.auth`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from dialer.models import BigId
from infra.db import Base, UTCDateTime, utcnow

__all__ = ["ROLE_RANK", "Role", "User"]


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"
    ADMIN = "admin"


#: Each role may do everything the roles below it may do (except agents' own-page rules).
ROLE_RANK: dict[Role, int] = {Role.AGENT: 0, Role.SUPERVISOR: 1, Role.MANAGER: 2, Role.ADMIN: 3}


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('agent', 'supervisor', 'manager', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
