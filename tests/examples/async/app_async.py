"""An async application's module-level session factories (named in db_sessionmakers)."""

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker

from models import User

SessionLocal = async_sessionmaker(expire_on_commit=False)
ScopedSession = async_scoped_session(async_sessionmaker(), scopefunc=asyncio.current_task)


async def create_user(name):
    async with SessionLocal() as session:
        session.add(User(name=name))
        await session.commit()


async def count_users():
    async with SessionLocal() as session:
        return await session.scalar(select(func.count()).select_from(User))
