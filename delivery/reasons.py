"""Every reason code the pipeline records, as one enumeration: stored with outcomes, rollups and samples
and shown in the API, so the values never change. The discard catalogue explains each one."""

from enum import StrEnum


class Reason(StrEnum):
    # Failed on ingest: the tracking API's codes for a request or message it would not store.
    EMPTY_BATCH_RESULT = "empty_batch_result"
    SOURCE_DISABLED = "source_disabled"
    EMPTY_BATCH = "empty_batch"
    MULTI_USER_ERROR = "multi_user_error"
    NO_USER_ANON_ID = "no_user_anon_id"
    EVENT_NOT_DEFINED = "event_not_defined"
    EVENT_NOT_STRING = "event_not_string"
    PROPERTIES_NOT_OBJECT = "properties_not_object"
    TRAITS_NOT_OBJECT = "traits_not_object"
    NAME_NOT_STRING = "name_not_string"
    CATEGORY_NOT_STRING = "category_not_string"
    ID_REQUIRED = "id_required"
    ID_NOT_STRING = "id_not_string"
    CONSENT_CATEGORYPREFERENCES_SHOULD_EXIST = "consent_categorypreferences_should_exist"
    CONSENT_CATEGORYPREFERENCES_FIELDS_SHOULD_BE_OBJECT = (
        "consent_categorypreferences_fields_should_be_object"
    )
    CONSENT_CATEGORYPREFERENCES_FIELDS_SHOULD_BE_BOOL = "consent_categorypreferences_fields_should_be_bool"
    DEVICE_ADVERTISINGID_SHOULD_BE_STRING = "device_advertisingid_should_be_string"
    CONSENT_VERSION_SHOULD_BE_NUMBER = "consent_version_should_be_number"
    # The lower-case code for a body or message that cannot be read; BAD_REQUEST is another entry.
    BAD_REQUEST_BODY = "bad_request"
    UNKNOWN_SOURCE = "unknown_source"
    UNSUPPORTED_TYPE = "unsupported_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    MESSAGE_TOO_LARGE = "message_too_large"
    NESTING_TOO_DEEP = "nesting_too_deep"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    PREVIOUS_ID_REQUIRED = "previous_id_required"
    GROUP_ID_REQUIRED = "group_id_required"
    # Filtered at source: the source's schema controls and tracking plan.
    COMMON_SCHEMA_VIOLATION = "common_schema_violation"
    EVENT_SETTING = "event_setting"
    SCHEMA_VIOLATION = "schema_violation"
    UNPLANNED = "unplanned"
    UNPLANNED_AND_SCHEMA_VIOLATION = "unplanned_and_schema_violation"
    # Filtered at destination: routing's gate and the mappings' triggers.
    FILTERED_BY_RULES = "FILTERED_BY_RULES"
    FILTERED_BY_INTEGRATIONS_OBJECT = "FILTERED_BY_INTEGRATIONS_OBJECT"
    UNKNOWN_INTEGRATION = "UNKNOWN_INTEGRATION"
    MESSAGE_SENT_CLIENT_SIDE = "MESSAGE_SENT_CLIENT_SIDE"
    UNSUPPORTED_EVENT_TYPE = "UNSUPPORTED_EVENT_TYPE"
    INVALID_SETTINGS = "INVALID_SETTINGS"
    INTERNAL = "INTERNAL"
    NO_MATCHING_MAPPING = "NO_MATCHING_MAPPING"
    FILTERED_AT_MAPPING = "FILTERED_AT_MAPPING"
    FILTERED_BY_END_USER_CONSENT = "FILTERED_BY_END_USER_CONSENT"
    FAILED_DATA_ENCRYPTION = "FAILED_DATA_ENCRYPTION"
    MAPPING_DISABLED = "MAPPING_DISABLED"
    DESTINATION_DISABLED = "DESTINATION_DISABLED"
    # Failed delivery (and pending retry): the destination's answer, or why no answer came.
    HTTP_307 = "307"
    HTTP_400 = "400"
    HTTP_401 = "401"
    HTTP_403 = "403"
    HTTP_404 = "404"
    HTTP_408 = "408"
    HTTP_429 = "429"
    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    HTTP_504 = "504"
    MESSAGE_REJECTED = "MESSAGE_REJECTED"
    BAD_REQUEST = "BAD_REQUEST"
    ETIMEDOUT = "ETIMEDOUT"
    EREFUSED = "EREFUSED"
    ENOTFOUND = "ENOTFOUND"
    ECONNRESET = "ECONNRESET"
    RETRY = "RETRY"
    PAYLOAD_VALIDATION_FAILED = "PAYLOAD_VALIDATION_FAILED"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
    PRIVATE_ADDRESS = "PRIVATE_ADDRESS"
    UNREADABLE_RESPONSE = "UNREADABLE_RESPONSE"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"


# HTTP statuses the catalogue describes one by one. Any other status is recorded as its number, or
# MESSAGE_REJECTED / INTERNAL for other 4xx / 5xx (multistatus.reason_for_status).
STATUS_REASONS = {int(reason): reason for reason in Reason if reason.isdigit()}
