"""The discard catalogue: every reason an operator can meet has a label, an explanation and a remedy."""

import dataclasses

import pytest

from delivery.catalogue import CATALOGUE, DiscardReason, describe, reasons_for
from delivery.steps import Step

REQUIRED = {
    Step.FAILED_ON_INGEST: [
        "empty_batch",
        "source_disabled",
        "no_user_anon_id",
        "event_not_defined",
        "event_not_string",
        "properties_not_object",
        "traits_not_object",
        "name_not_string",
        "category_not_string",
        "id_required",
        "id_not_string",
        "bad_request",
        "unknown_source",
        "consent_categorypreferences_should_exist",
        "consent_categorypreferences_fields_should_be_object",
        "consent_categorypreferences_fields_should_be_bool",
        "device_advertisingid_should_be_string",
        "consent_version_should_be_number",
        "unsupported_type",
        "invalid_timestamp",
        "message_too_large",
    ],
    Step.FILTERED_AT_SOURCE: [
        "common_schema_violation",
        "event_setting",
        "schema_violation",
        "unplanned",
        "unplanned_and_schema_violation",
    ],
    Step.FILTERED_AT_DESTINATION: [
        "FILTERED_BY_RULES",
        "FILTERED_BY_INTEGRATIONS_OBJECT",
        "UNKNOWN_INTEGRATION",
        "MESSAGE_SENT_CLIENT_SIDE",
        "UNSUPPORTED_EVENT_TYPE",
        "INVALID_SETTINGS",
        "INTERNAL",
        "NO_MATCHING_MAPPING",
        "FILTERED_AT_MAPPING",
        "FILTERED_BY_END_USER_CONSENT",
        "FAILED_DATA_ENCRYPTION",
        "MAPPING_DISABLED",
        "DESTINATION_DISABLED",
    ],
    Step.FAILED_DELIVERY: [
        "INVALID_SETTINGS",
        "429",
        "EREFUSED",
        "UNSUPPORTED_EVENT_TYPE",
        "MESSAGE_REJECTED",
        "400",
        "BAD_REQUEST",
        "ETIMEDOUT",
        "ENOTFOUND",
        "INTERNAL",
        "404",
        "307",
        "502",
        "503",
        "RETRY",
        "401",
        "ECONNRESET",
        "PAYLOAD_VALIDATION_FAILED",
        "403",
        "408",
        "500",
        "504",
        "RETRIES_EXHAUSTED",
        "PRIVATE_ADDRESS",
        "UNREADABLE_RESPONSE",
        "UNKNOWN_ERROR",
    ],
}
RETRYABLE = [
    "429",
    "408",
    "500",
    "502",
    "503",
    "504",
    "ETIMEDOUT",
    "INTERNAL",
    "ECONNRESET",
    "EREFUSED",
    "RETRY",
]
HOSTED_ONLY = [
    "lambda_err",
    "BAD_DEPLOY",
    "FUNCTION_TIMEOUT",
    "INVOKE_ERROR",
    "locked_workspace",
    "SET_API_FAILED",
]


def _texts(reason: DiscardReason) -> list[str]:
    return [reason.code, reason.label, reason.what_happened, reason.remedy]


@pytest.mark.parametrize(
    ("step", "code"), [(step, code) for step, codes in REQUIRED.items() for code in codes]
)
def test_every_required_reason_is_explained_under_its_step(step, code):
    reason = CATALOGUE[(step, code)]

    assert (reason.step, reason.code) == (step, code)
    assert reason.label.strip() and reason.what_happened.strip() and reason.remedy.strip()
    assert describe(step, code) is reason
    assert describe(str(step), code) is reason


def test_a_code_used_at_two_steps_has_a_distinct_entry_at_each():
    filtered = describe(Step.FILTERED_AT_DESTINATION, "INTERNAL")
    failed = describe(Step.FAILED_DELIVERY, "INTERNAL")

    assert filtered != failed
    assert filtered.step == Step.FILTERED_AT_DESTINATION and failed.step == Step.FAILED_DELIVERY
    assert filtered.what_happened != failed.what_happened
    assert (filtered.retried, failed.retried) == (False, True)


def test_duplicates_are_counted_elsewhere_not_catalogued_as_a_discard():
    assert all(code != "duplicate" for _, code in CATALOGUE)


def test_hosted_function_reasons_are_left_out():
    assert not [code for _, code in CATALOGUE if code in HOSTED_ONLY]


def test_an_unknown_code_gets_a_generic_entry_that_names_it():
    reason = describe(Step.FAILED_DELIVERY, "WEIRD_NEW_ERROR")

    assert "WEIRD_NEW_ERROR" in reason.label
    assert (reason.step, reason.code, reason.retried) == (Step.FAILED_DELIVERY, "WEIRD_NEW_ERROR", False)
    assert reason.what_happened and reason.remedy


def test_an_unknown_status_code_is_described_as_the_destinations_answer():
    reason = describe("failed_delivery", "418")

    assert reason.label == "Status 418"
    assert "status 418" in reason.what_happened


def test_a_code_written_in_another_case_finds_its_entry():
    assert describe(Step.FAILED_DELIVERY, "etimedout") is CATALOGUE[(Step.FAILED_DELIVERY, "ETIMEDOUT")]
    assert describe(Step.FAILED_ON_INGEST, "SOURCE_DISABLED").code == "source_disabled"


def test_pending_retry_reuses_the_failed_delivery_text():
    failed = describe(Step.FAILED_DELIVERY, "429")
    pending = describe(Step.PENDING_RETRY, "429")

    assert pending.step == Step.PENDING_RETRY
    assert pending.retried is True
    assert dataclasses.replace(pending, step=Step.FAILED_DELIVERY) == failed


def test_pending_retry_lists_exactly_the_retryable_delivery_failures():
    pending = {reason.code for reason in reasons_for(Step.PENDING_RETRY)}

    assert set(RETRYABLE) <= pending
    assert pending == {reason.code for reason in reasons_for(Step.FAILED_DELIVERY) if reason.retried}


@pytest.mark.parametrize("code", ["401", "403", "400", "404", "MESSAGE_REJECTED", "RETRIES_EXHAUSTED"])
def test_failures_that_need_the_operator_are_not_marked_retried(code):
    assert describe(Step.FAILED_DELIVERY, code).retried is False


@pytest.mark.parametrize("code", RETRYABLE)
def test_retryable_failures_are_marked_retried(code):
    assert describe(Step.FAILED_DELIVERY, code).retried is True


def test_reasons_for_keeps_catalogue_order_and_one_step():
    ingest = reasons_for(Step.FAILED_ON_INGEST)

    assert [r.code for r in ingest][:3] == ["empty_batch_result", "source_disabled", "empty_batch"]
    assert {r.step for r in ingest} == {Step.FAILED_ON_INGEST}
    assert [r.code for r in reasons_for("filtered_at_source")] == REQUIRED[Step.FILTERED_AT_SOURCE]
    assert reasons_for(Step.DELIVERED) == []


def test_no_text_mentions_the_hosted_product_support_or_links():
    for reason in CATALOGUE.values():
        for text in _texts(reason):
            lowered = text.lower()
            assert "segment" not in lowered, reason
            assert "support@" not in lowered and "contact support" not in lowered, reason
            assert "http" not in lowered, reason
            assert "lambda" not in lowered, reason
            assert "\n" not in text, reason


@pytest.mark.parametrize("step", [Step.PENDING_RETRY, Step.FAILED_DELIVERY])
def test_a_timeout_is_shown_as_possibly_delivered_with_duplicates_to_dedupe(step):
    timed_out = describe(step, "ETIMEDOUT")

    assert "may still have reached the destination and been accepted" in timed_out.what_happened
    assert "delivered may be under-reported" in timed_out.what_happened
    assert "duplicate" in timed_out.what_happened
    assert "idempotency key" in timed_out.remedy
