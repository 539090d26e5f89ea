"""The change log: every change to a source, a destination (its filters, its sources), a mapping or an
alert rule, through the pages, the API or the admin — who, when, and each field before and after, with
secrets masked. django-auditlog records them (a LogEntry per save or delete, from model signals), so
no view has to remember to.

The actor is the request's user, read when the entry is written: an API call that DRF authenticated
with a token after the middleware ran is attributed to that token's user too. A mapping's and an alert
rule's entries carry their destination's or source's id, so a destination's Changes tab lists its
mappings' changes too, deleted ones included.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils.functional import SimpleLazyObject

SECRET = "••••••"
# An alert rule's own state, rewritten at each evaluation: not a change anyone made.
ALERT_STATE_FIELDS = [
    "state", "recovered_checks", "last_evaluated_at", "last_value", "last_volume", "last_error", "last_text",
    "last_note", "created_by",
]  # fmt: skip
LIMIT = 200  # entries a tab or the API lists, newest first


def mask(value: str) -> str:
    """A secret's value in the log, before and after alike: only that it changed shows."""
    return SECRET


def _own_fields(model, leave_out: list[str]) -> list[str]:
    """The model's own columns (no reverse relations), but its id, creation time and those left out."""
    skip = {"id", "created_at", *leave_out}
    return [f.name for f in model._meta.concrete_fields if f.name not in skip]


def register() -> None:
    from delivery.models import Destination, Mapping, Source
    from overview.models import AlertRule

    masked = {"mask_callable": "overview.changes.mask"}
    auditlog.register(Source, include_fields=_own_fields(Source, []), mask_fields=["write_key"], **masked)
    auditlog.register(
        Destination,
        include_fields=_own_fields(Destination, []),
        mask_fields=["credentials_encrypted"],
        m2m_fields={"sources"},
        **masked,
    )
    auditlog.register(Mapping, include_fields=_own_fields(Mapping, []))
    auditlog.register(
        AlertRule,
        include_fields=_own_fields(AlertRule, ALERT_STATE_FIELDS),
        mask_fields=["slack_webhook_encrypted"],
        **masked,
    )


class ActorMiddleware(AuditlogMiddleware):
    """auditlog's middleware, with the actor read lazily (see the module's docstring). The tracking API
    (every event's path) changes no configuration, so it goes straight through."""

    @staticmethod
    def _get_actor(request):
        return SimpleLazyObject(lambda: request.user)

    def __call__(self, request):
        if TRACKING_PATHS.match(request.path_info):
            return self.get_response(request)
        return super().__call__(request)


TRACKING_PATHS = re.compile(settings.CORS_URLS_REGEX)


@dataclass(frozen=True)
class Change:
    at: dt.datetime
    actor: str  # the user's name; "" when no user made it (a command, a migration)
    object_type: str  # source, destination, mapping, alert rule
    object_id: str
    object_repr: str
    action: str  # created, changed, deleted
    fields: dict[str, tuple[str, str]]  # field -> (before, after), as recorded; secrets masked


ACTIONS = {
    LogEntry.Action.CREATE: "created",
    LogEntry.Action.UPDATE: "changed",
    LogEntry.Action.DELETE: "deleted",
}


def for_destination(destination, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list:
    from delivery.models import Mapping
    from overview.models import AlertRule

    own = Q(content_type=ContentType.objects.get_for_model(destination), object_pk=str(destination.pk))
    parts = Q(
        content_type__in=[ContentType.objects.get_for_model(m) for m in (Mapping, AlertRule)],
        additional_data__destination_id=destination.pk,
    )
    return _changes(own | parts, since, until)


def for_source(source, since: dt.datetime | None = None, until: dt.datetime | None = None) -> list:
    from overview.models import AlertRule

    own = Q(content_type=ContentType.objects.get_for_model(source), object_pk=str(source.pk))
    rules = Q(content_type=ContentType.objects.get_for_model(AlertRule), additional_data__source_id=source.pk)
    return _changes(own | rules, since, until)


def _changes(which: Q, since: dt.datetime | None, until: dt.datetime | None) -> list[Change]:
    entries = LogEntry.objects.filter(which, action__in=list(ACTIONS)).select_related("actor", "content_type")
    if since is not None:
        entries = entries.filter(timestamp__gte=since)
    if until is not None:
        entries = entries.filter(timestamp__lt=until)
    return [
        Change(
            at=entry.timestamp,
            actor=entry.actor.get_username() if entry.actor else "",
            object_type=entry.content_type.model_class()._meta.verbose_name,
            object_id=entry.object_pk,
            object_repr=entry.object_repr,
            action=ACTIONS[entry.action],
            fields=_fields(entry),
        )
        for entry in entries.order_by("-timestamp", "-id")[:LIMIT]
    ]


# Stored fields whose name is not what an operator calls them
FIELD_NAMES = {"credentials_encrypted": "credentials", "slack_webhook_encrypted": "slack_webhook"}


def _fields(entry: LogEntry) -> dict[str, tuple[str, str]]:
    out = {}
    for field, values in (entry.changes_dict or {}).items():
        name = FIELD_NAMES.get(field, field)
        if isinstance(values, dict):  # a many-to-many field: {type, operation, objects}
            out[name] = (
                "",
                f"{values.get('operation', '')}: {', '.join(map(str, values.get('objects', [])))}",
            )
            continue
        before, after = ("" if value == "None" else str(value) for value in values)
        out[name] = ("" if entry.action == LogEntry.Action.CREATE else before, after)
    return out
