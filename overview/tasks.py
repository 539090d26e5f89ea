"""Celery tasks of the alerts queue: thin wrappers that take ids and call overview.alerts / overview.notify.

Beat runs `evaluate_alerts` every minute: one `evaluate_rule` task per due rule, and a resend of any
notification whose task message was lost. A transition's notifications go out one task per channel,
retried with backoff; their failures are recorded on the incident by notify.send.
"""

from celery import shared_task
from django.utils import timezone

from overview import alerts, notify


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
