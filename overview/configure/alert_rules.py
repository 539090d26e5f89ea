"""Alert rule pages: the Alerts tab of each destination and source (rules to create, with their recent
incidents), and a rule's page to edit, mute or delete it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from delivery.models import Destination, Source, Workspace
from overview import alerts, tenancy
from overview.alerting.incidents import recent_incidents
from overview.configuration import alert_rules
from overview.configure.forms import AlertRuleForm
from overview.configure.pages import read_only, save_form
from overview.models import AlertRule
from overview.pages.navigation import render_page
from overview.tenancy import require_owner, workspace_or_404

RATE_DEFINITION = (
    "Delivery success rate = events delivered ÷ (delivered + failed delivery) over the last 24 hours, "
    "each event counted once across its mappings (failed if any mapping finally failed it); events still "
    "pending a retry are not counted until they end, and are shown beside it. (Not the overview's "
    '"delivered share of received", which divides by every event received.)'
)
VOLUME_DEFINITION = (
    "Volume = events received in the last hour. Its usual level is the mean of the same hour on each of "
    "the previous 7 days since the source was created."
)
FLAPPING_NOTE = (
    "An incident opens at the first breached evaluation (every minute) and resolves after two evaluations "
    "in a row recovered by at least 1 point, so a figure hovering at the threshold does not flap."
)


def _alerts_tab(request: HttpRequest, workspace: Workspace, kind: str, subject) -> HttpResponse:
    can_write = tenancy.can_write(request.user, workspace)
    field = "destination" if kind == AlertRule.Kind.DELIVERY_RATE else "source"
    form = AlertRuleForm(request.POST or None, kind=kind)
    if request.method == "POST":
        require_owner(request.user, workspace)
        if form.is_valid():
            data = {**form.changes(), "kind": kind, field: subject, "created_by": request.user}
            if rule := save_form(form, alert_rules.create_rule, data):
                messages.success(request, f"Alert rule created: {rule.description}.")
                return redirect(f"configure:{field}_alerts", workspace.slug, subject.id)
    rules = AlertRule.objects.filter(**{field: subject}).order_by("id")
    return render_page(
        request,
        "configure/alerts_tab.html",
        {
            "workspace": workspace,
            field: subject,
            "subject": subject,
            "kind": kind,
            "rules": rules,
            "incidents": recent_incidents(workspace, **{field: subject}),
            "form": form if can_write else read_only(form),
            "can_write": can_write,
            "definition": RATE_DEFINITION if kind == AlertRule.Kind.DELIVERY_RATE else VOLUME_DEFINITION,
            "flapping_note": FLAPPING_NOTE,
            "tab": "alerts",
        },
    )


@login_required
def destination_alerts(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    destination = get_object_or_404(Destination, workspace=workspace, pk=pk)
    return _alerts_tab(request, workspace, AlertRule.Kind.DELIVERY_RATE, destination)


@login_required
def source_alerts(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    source = get_object_or_404(Source, workspace=workspace, pk=pk)
    return _alerts_tab(request, workspace, AlertRule.Kind.SOURCE_VOLUME, source)


def _back_to(rule: AlertRule):
    if rule.destination_id:
        return redirect("configure:destination_alerts", rule.workspace.slug, rule.destination_id)
    return redirect("configure:source_alerts", rule.workspace.slug, rule.source_id)


@login_required
def rule_edit(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    rule = get_object_or_404(AlertRule.objects.select_related("workspace"), workspace=workspace, pk=rule_id)
    can_write = tenancy.can_write(request.user, workspace)
    if request.method == "POST":
        require_owner(request.user, workspace)
        form = AlertRuleForm(request.POST, kind=rule.kind)
        if form.is_valid() and save_form(form, alert_rules.update_rule, rule, form.changes()):
            messages.success(request, "Alert rule saved.")
            return _back_to(rule)
    else:
        form = AlertRuleForm(initial=AlertRuleForm.initial_for(rule), kind=rule.kind)
    context = {
        "workspace": workspace,
        "rule": rule,
        "subject": rule.subject,
        "form": form if can_write else read_only(form),
        "can_write": can_write,
    }
    return render_page(request, "configure/rule_form.html", context)


@login_required
@require_POST
def rule_mute(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    rule = get_object_or_404(AlertRule.objects.select_related("workspace"), workspace=workspace, pk=rule_id)
    require_owner(request.user, workspace)
    rule.muted = not rule.muted
    rule.save(update_fields=["muted"])
    messages.success(request, "Rule muted: nobody is notified." if rule.muted else "Rule unmuted.")
    return _back_to(rule)


@login_required
@require_POST
def rule_delete(request: HttpRequest, slug: str, rule_id: int) -> HttpResponse:
    workspace = workspace_or_404(request.user, slug)
    rule = get_object_or_404(AlertRule.objects.select_related("workspace"), workspace=workspace, pk=rule_id)
    require_owner(request.user, workspace)
    back = _back_to(rule)
    alerts.delete_rule(rule)
    messages.success(request, "Alert rule deleted; its incidents stay on record.")
    return back
