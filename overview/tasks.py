"""Celery tasks of the alerts queue: thin wrappers that take ids and call overview.alerts / overview.notify,
and the operators' bulk retries (overview.retries).

Beat runs `evaluate_alerts` every minute: one `evaluate_rule` task per due rule, and a resend of any
notification whose task message was lost. A transition's notifications go out one task per channel,
retried with backoff; their failures are recorded on the incident by notify.send.
"""

from celery import shared_task
from django.utils import timezone

from overview import alerts, notify, retries


@shared_task(ignore_result=True)
def evaluate_alerts() -> None:
    now = timezone.now()
    for rule_id in alerts.due_rule_ids(now):
        evaluate_rule.delay(rule_id)
    for delivery_id in notify.lost_delivery_ids(now):
        send_notification.delay(delivery_id)


@shared_task(ignore_result=True)
def evaluate_rule(rule_id: int) -> None:
    evaluation = alerts.evaluate_rule(rule_id, force=False)
    for delivery_id in evaluation.delivery_ids:
        send_notification.delay(delivery_id)


@shared_task(bind=True, ignore_result=True, max_retries=len(notify.RETRY_DELAYS))
def send_notification(self, delivery_id: int) -> None:
    result = notify.send(delivery_id, final=self.request.retries >= self.max_retries)
    if result.retry:
        raise self.retry(countdown=notify.RETRY_DELAYS[self.request.retries])


@shared_task(ignore_result=True)
def run_retry_job(job_id: int) -> None:
    """A bulk retry, for TASK_BUDGET_SECONDS at a time: then the rest is a fresh task."""
    if retries.run(job_id):
        run_retry_job.delay(job_id)


@shared_task(ignore_result=True)
def resume_retry_jobs() -> None:
    """Beat: start again the running retries whose task was lost (a worker stopped)."""
    for job_id in retries.stalled_job_ids():
        run_retry_job.delay(job_id)
