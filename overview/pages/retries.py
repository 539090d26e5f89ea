"""Pages of bulk retries (overview.retries): the dry run of a retry of a destination's failed deliveries
(with the undelivered list's filters, or one event's), which an owner confirms to start the job, and the
job's progress, which an owner can cancel. Every member sees both."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect

from delivery.models import Destination
from delivery.steps import Step
from overview import retries, tenancy
from overview.models import RetryJob
from overview.pages.navigation import render_page
from overview.tenancy import workspace_or_404


@login_required
def retry_preview(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """GET: what a retry with these filters would queue again (changes nothing). POST: start it."""
    ws = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=ws, pk=pk)
    params = request.POST if request.method == "POST" else request.GET
    kept = {name: params[name] for name in retries.FILTER_PARAMS if params.get(name)}
    can_write = tenancy.can_write(request.user, ws)
    try:
        match = retries.parse(destination, kept)
    except ValueError as bad:
        context = {"workspace": ws, "destination": destination, "problem": str(bad), "kept": kept}
        return render_page(request, "overview/retry.html", context, status=400)
    if request.method == "POST":
        tenancy.require_owner(request.user, ws)
        job = retries.start(destination, match, request.user)
        return redirect("retry_job", slug=ws.slug, pk=job.id)
    mappings = {m.id: m for m in destination.mappings.all()}
    context = {
        "workspace": ws,
        "destination": destination,
        "preview": retries.preview(destination, match),
        "match": match,
        "mapping": mappings.get(match.mapping_id),
        "kept": kept,
        "can_write": can_write,
        "mappings": list(mappings.values()),
        "recent": destination.retry_jobs.select_related("created_by").order_by("-created_at")[:5],
    }
    return render_page(request, "overview/retry.html", context)


@login_required
def retry_job(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    """A job's progress; POST cancels it (owners)."""
    ws = workspace_or_404(request.user, slug)
    job = get_object_or_404(RetryJob.objects.select_related("destination", "created_by"), workspace=ws, pk=pk)
    if request.method == "POST":
        tenancy.require_owner(request.user, ws)
        retries.cancel(job)
        return redirect("retry_job", slug=ws.slug, pk=job.id)
    progress = retries.progress(job)
    match = retries.match_of(job)
    mappings = {m.id: m for m in job.destination.mappings.all()}
    context = {
        "workspace": ws,
        "destination": job.destination,
        "job": job,
        "progress": progress,
        "match": match,
        "mapping": mappings.get(match.mapping_id),
        "can_write": tenancy.can_write(request.user, ws),
        # The page follows the job until every event it queued has been sent or has failed again.
        "refresh": job.state == RetryJob.State.RUNNING or progress.waiting > 0,
        "failed_step": str(Step.FAILED_DELIVERY),
    }
    return render_page(request, "overview/retry_job.html", context)
