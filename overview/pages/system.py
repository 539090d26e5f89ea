"""The System page, for owners: the workers seen and when, the task queues, each of the operator's
destinations' backlog and oldest pending event, the partitions kept, and the version — what an operator
checks first when the figures stop moving."""

import datetime as dt

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from delivery import heartbeats, partitions
from delivery.models import Destination, Membership, WorkerHeartbeat
from delivery.wakeups import BROKER_ERRORS
from overview import ops
from overview.pages.navigation import render_page
from overview.tenancy import sees_system


@login_required
def system(request: HttpRequest) -> HttpResponse:
    """Owners of a workspace (and deployment staff) see it: the workers and queues every workspace shares,
    and the backlog of the destinations they own."""
    if not sees_system(request.user):
        raise PermissionDenied("The System page is for the owners of a workspace.")
    now = dt.datetime.now(dt.UTC)
    owned = Destination.objects.filter(
        workspace__memberships__user=request.user, workspace__memberships__role=Membership.Role.OWNER
    ).select_related("workspace")
    destinations = {d.id: d for d in (Destination.objects.all() if request.user.is_staff else owned)}
    backlog = [(destinations[b.destination_id], b) for b in ops.backlogs(list(destinations))]
    try:
        queues, broker_error = ops.queue_lengths(), ""
    except BROKER_ERRORS as error:
        queues, broker_error = {}, str(error)
    days = partitions.days()
    workers = list(WorkerHeartbeat.objects.all())
    fresh = now - heartbeats.SEEN_WITHIN
    context = {
        "workers": [(w, w.seen_at >= fresh) for w in workers],
        "workers_running": sum(1 for w in workers if w.seen_at >= fresh),
        "queues": queues,
        "broker_error": broker_error,
        "backlog": backlog,
        "oldest": min((b.oldest_received_at for _, b in backlog if b.oldest_received_at), default=None),
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        "partition_days": len(days),
        "retention_days": settings.EVENT_RETENTION_DAYS,
        "version": heartbeats.version(),
        "now": now,
    }
    return render_page(request, "overview/system.html", context)
