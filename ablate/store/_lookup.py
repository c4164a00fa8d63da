"""Finding a study's current version in a session: the lookup every reader and writer shares."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ablate.errors import StudyError
from ablate.store._models import Study
from ablate.store._records import StudyInfo


def latest_study(session: Session, name: str, *, lock: bool = False) -> Study | None:
    """The newest version of study ``name``, or None."""
    query = select(Study).where(Study.name == name).order_by(Study.version.desc()).limit(1)
    if lock:
        # PostgreSQL: writers of one study queue here. SQLite ignores it: BEGIN IMMEDIATE
        # already holds the database's write lock.
        query = query.with_for_update()
    return session.scalars(query).first()


def study_row(session: Session, name: str, where: str, *, lock: bool = False) -> Study:
    """The newest version of study ``name``; StudyError listing the known studies of ``where``
    (the database's masked URL) when there is none."""
    row = latest_study(session, name, lock=lock)
    if row is None:
        known = sorted(set(session.scalars(select(Study.name))))
        listing = ", ".join(known) if known else "none yet"
        raise StudyError(f"no study named {name!r} in {where} (studies: {listing})")
    return row


def study_info(row: Study) -> StudyInfo:
    """A study row as the plain object the store hands out."""
    return StudyInfo(
        study_id=row.id,
        name=row.name,
        version=row.version,
        design=row.design,
        metric=row.metric,
        direction=row.direction,
        factors=list(row.factors),
        seeds=[int(s) for s in row.seeds],
        baseline=dict(row.baseline) if row.baseline is not None else None,
        definition=dict(row.definition),
        description=row.description,
        view_name=row.view_name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        factor_kinds=dict(row.factors),
    )
