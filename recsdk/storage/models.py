"""Typed SQLAlchemy 2 models: the shop's catalogue, behaviour, served lists and models.

The same tables live in SQLite (the embedded default) and PostgreSQL. Constraint names
follow one convention so that alembic names them the same on every database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID_LENGTH = 255


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone; PostgreSQL keeps ``timestamptz``. Naive values are taken
    as UTC on the way in, so both databases give the same answers.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Category(Base):
    """A node of the category tree; ``parent_id`` is None at the roots."""

    __tablename__ = "categories"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(ID_LENGTH))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Item(Base):
    """A product. ``active`` false or ``stock`` 0 keeps it out of recommendations."""

    __tablename__ = "items"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[str | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    tags: Mapped[list[str]] = mapped_column(default=list)
    price: Mapped[float | None] = mapped_column(Float)
    original_price: Mapped[float | None] = mapped_column(Float)
    stock: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    image_url: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Base):
    """A shopper; ``attributes`` holds demographics and anything the shop knows."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """One behaviour event. ``event_id`` is the client's idempotency key.

    This is the SQLite layout. On PostgreSQL the table is partitioned by month
    (migration 0010, :mod:`recsdk.storage.partitions`): its primary key is
    ``(id, timestamp)`` and ``event_id`` is kept unique by the ``event_keys`` table.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_id_timestamp", "user_id", "timestamp"),
        Index("ix_events_session_id_timestamp", "session_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), unique=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    # no item index: nothing reads events by item, and each index costs ingestion
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    type: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Float)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class RecommendationRequest(Base):
    """One served list: who asked, where, which variant and configuration answered."""

    __tablename__ = "recommendation_requests"
    __table_args__ = (Index("ix_recommendation_requests_user_id_created_at",
                            "user_id", "created_at"),
                      Index("ix_recommendation_requests_experiment_created_at",
                            "experiment", "created_at"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    session_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    placement: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(128))
    #: the A/B experiment the list was served in (None: none)
    experiment: Mapped[str | None] = mapped_column(String(128))
    #: the variant was forced (QA override): never counted in an experiment's analysis
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    config_hash: Mapped[str] = mapped_column(String(64))
    plugins: Mapped[list[str]] = mapped_column(default=list)
    degraded: Mapped[bool] = mapped_column(Boolean, default=False)
    #: time to answer, milliseconds (None: logged before guardrails were recorded)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    #: plugin calls that failed or timed out while answering (the list may still be full)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentRecord(Base):
    """An experiment's assignment settings as last served (start, shares, ramp, salt...):
    a later configuration that would move units between arms is refused against it."""

    __tablename__ = "experiment_records"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentAllocation(Base):
    """The traffic shares of one epoch of a Thompson-allocated experiment, computed once
    from the report at the epoch's start; every serving process reads the same row."""

    __tablename__ = "experiment_allocations"

    experiment: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch_start: Mapped[datetime] = mapped_column(primary_key=True)
    #: {variant: share} new units of this epoch are placed by (they add up to 1)
    shares: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: {variant: P(best)} of the posteriors; None: warm-up, the declared shares
    prob_best: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: {variant: [successes, trials]} the posteriors were built from
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentAssignment(Base):
    """A unit's first arm in an experiment whose shares change (Thompson allocation):
    the unit keeps it, whatever later epochs' shares say."""

    __tablename__ = "experiment_assignments"

    experiment: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: ``user:ID`` or ``session:ID`` (recsdk.experiments.assignment.unit_of)
    unit: Mapped[str] = mapped_column(String(ID_LENGTH + 8), primary_key=True)
    variant: Mapped[str] = mapped_column(String(128))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class Impression(Base):
    """An item shown in a served list, at a position, with its blended score."""

    __tablename__ = "impressions"
    __table_args__ = (UniqueConstraint("request_id", "position"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(
        ForeignKey("recommendation_requests.id", ondelete="CASCADE"), index=True
    )
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    #: probability that a stochastic policy (a bandit) showed the item at this position;
    #: None when the list was not drawn at random (off-policy evaluation needs it)
    propensity: Mapped[float | None] = mapped_column(Float)


class Feedback(Base):
    """A reaction (click, add to cart, purchase...) credited to a served list."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(
        ForeignKey("recommendation_requests.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    type: Mapped[str] = mapped_column(String(64))
    position: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)
    variant: Mapped[str | None] = mapped_column(String(128))
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)


class ModelRun(Base):
    """One training run: immutable once ``ready``; serving processes load a whole run.

    ``activated_at`` orders activations: the active run is the ready run activated
    last (``recsdk train`` activates its run; ``recsdk models activate`` rolls back).
    """

    __tablename__ = "model_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="training")
    config_hash: Mapped[str] = mapped_column(String(64))
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    events_through: Mapped[int | None] = mapped_column(BigInteger)
    plugins: Mapped[list[str]] = mapped_column(default=list)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    activated_at: Mapped[datetime | None] = mapped_column(index=True)


class ModelArtifact(Base):
    """One artifact of a run: ``.npz`` bytes in ``data`` (never pickle), or a file.

    Large artifacts (embedding tables, ANN indexes, torch state dicts) live as files
    under the configured artifact directory; ``path`` is relative to it and
    ``sha256`` is checked before anything is loaded.
    """

    __tablename__ = "model_artifacts"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    config_hash: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16), default="npz")
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("model_runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)


class ItemFeature(Base):
    """One computed feature vector of an item (``name`` = block, e.g. ``text:minilm``).

    ``version`` names the extractor that produced it and ``content_hash`` the input it
    read, so only items whose content (or the extractor) changed are recomputed.
    ``vector`` holds ``.npy`` bytes (dense float32) or ``.npz`` bytes (sparse).
    """

    __tablename__ = "item_features"
    __table_args__ = (UniqueConstraint("item_id", "name"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(16))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BanditStatistic(Base):
    """One number of a bandit's shared statistics (``recsdk_plugins.bandits.state``):
    processes add to it with atomic increments; cell -1 marks the state as started."""

    __tablename__ = "bandit_statistics"

    namespace: Mapped[str] = mapped_column(String(128), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(Float)


class BanditPull(Base):
    """A shown item's context, kept until ``expires_at`` to credit a later reward."""

    __tablename__ = "bandit_pulls"

    namespace: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    context: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(index=True)
