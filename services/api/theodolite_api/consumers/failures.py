"""What a failure to apply an event means for its message: retried when it may pass (the database
restarting, a lock or a statement timing out), dead-lettered at once when applying the same event
again would fail the same way (a value PostgreSQL refuses, a broken constraint). A consumer applies
one event at a time, so an event retried in vain holds up every event behind it."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from theodolite.consumers import Outcome

# SQLSTATE classes (PostgreSQL, appendix A) of errors that recur on every try: feature not
# supported, cardinality violation, data exception (NUL in text: 22021; a number out of range),
# integrity constraint violation, syntax error or access rule violation, with check option.
# Everything else is retried: connection exceptions (08), transaction rollbacks (40:
# serialization failures, deadlocks), insufficient resources (53), lock not available (55),
# operator intervention (57: a shutdown, a statement timeout), system and internal errors.
LASTING_SQLSTATE_CLASSES = frozenset({"0A", "21", "22", "23", "42", "44"})
LASTING_DBAPI_ERRORS = (
    sa_exc.DataError,
    sa_exc.IntegrityError,
    sa_exc.ProgrammingError,
    sa_exc.NotSupportedError,
)


def database_failure_outcome(error: Exception) -> Outcome:
    """``REJECT`` for a database error that would recur, ``RETRY_LATER`` for anything else."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return Outcome.RETRY_LATER
        # asyncpg's errors reach SQLAlchemy as a plain DBAPIError: their SQLSTATE tells.
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate:
            lasting = sqlstate[:2] in LASTING_SQLSTATE_CLASSES
            return Outcome.REJECT if lasting else Outcome.RETRY_LATER
        return Outcome.REJECT if isinstance(error, LASTING_DBAPI_ERRORS) else Outcome.RETRY_LATER
    if isinstance(error, sa_exc.StatementError):
        # Not the database's answer: the statement could not be built from the event's values.
        return Outcome.REJECT
    return Outcome.RETRY_LATER
