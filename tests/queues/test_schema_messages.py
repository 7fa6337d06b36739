"""A payload that breaks its handler's schema is refused in the operator's language: the
common jsonschema keywords become our own sentences, in English and in Chinese."""

from __future__ import annotations

import pytest
from django.utils import translation

from queues.exceptions import EnqueueError
from queues.models import Job
from queues.registry import get_handler, handler_names, job, payload_error
from queues.services import enqueue

SCHEMA = {
    "type": "object",
    "required": ["to", "count"],
    "additionalProperties": False,
    "properties": {
        "to": {"type": "string", "minLength": 3, "maxLength": 8, "pattern": "^[a-z]+$"},
        "count": {"type": "integer", "minimum": 1, "maximum": 5},
        "kind": {"enum": ["sms", "email"]},
        "tags": {"type": "array", "minItems": 1, "maxItems": 2},
        "flag": {"const": True},
        "ratio": {"type": ["number", "null"], "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    },
}
GOOD = {"to": "alice", "count": 2}


@pytest.fixture(scope="module")
def handler():
    if "test.schema-messages" not in handler_names():
        job("test.schema-messages", schema=SCHEMA, example=GOOD)(lambda ctx, p: None)
    return get_handler("test.schema-messages")


CASES = [
    ({"count": 2}, '"to" is required', '必须提供 "to"'),
    ({**GOOD, "extra": 1}, 'unexpected field "extra"', '多余的字段 "extra"'),
    ({**GOOD, "count": "two"}, "must be an integer (at count)", "必须是整数（位置：count）"),
    ({**GOOD, "kind": "fax"}, 'must be one of "sms", "email" (at kind)', "必须是以下之一"),
    ({**GOOD, "flag": False}, "must be true (at flag)", "必须是 true"),
    ({**GOOD, "count": 0}, "must be at least 1 (at count)", "必须至少为 1"),
    ({**GOOD, "count": 9}, "must be at most 5 (at count)", "必须至多为 5"),
    ({**GOOD, "ratio": 0}, "must be more than 0 (at ratio)", "必须大于 0"),
    ({**GOOD, "ratio": 1}, "must be less than 1 (at ratio)", "必须小于 1"),
    ({**GOOD, "ratio": "x"}, "must be a number or null (at ratio)", "必须是数字或null"),
    ({**GOOD, "to": "al"}, "must have at least 3 characters (at to)", "至少 3 个字符"),
    ({**GOOD, "to": "abcdefghij"}, "must have at most 8 characters (at to)", "至多 8 个字符"),
    ({**GOOD, "to": "ALICE"}, "must match the pattern ^[a-z]+$ (at to)", "必须符合模式 ^[a-z]+$"),
    ({**GOOD, "tags": []}, "must have at least 1 items (at tags)", "至少 1 项"),
    ({**GOOD, "tags": [1, 2, 3]}, "must have at most 2 items (at tags)", "至多 2 项"),
]


@pytest.mark.parametrize(("payload", "english", "chinese"), CASES)
def test_each_common_keyword_reads_as_a_sentence_in_both_languages(
    handler, payload, english, chinese
):
    with translation.override("en"):
        assert payload_error(handler, payload) == english
    with translation.override("zh-hans"):
        message = payload_error(handler, payload)
    assert chinese in message
    assert "property" not in message and "is not" not in message  # jsonschema's English


def test_a_valid_payload_has_no_error(handler):
    assert payload_error(handler, GOOD) is None


@pytest.mark.django_db
def test_enqueue_refuses_in_chinese_and_writes_nothing(handler):
    with translation.override("zh-hans"), pytest.raises(EnqueueError) as caught:
        enqueue("test.schema-messages", {"count": 2})
    assert '必须提供 "to"' in str(caught.value)
    assert "required property" not in str(caught.value)
    assert not Job.objects.exists()


def test_fields_a_pattern_allows_are_not_called_unexpected():
    from jsonschema import Draft202012Validator

    from queues.schema_messages import schema_message

    schema = {
        "type": "object",
        "properties": {"to": {"type": "string"}},
        "patternProperties": {"^x-": {"type": "string"}},
        "additionalProperties": False,
    }
    (error,) = Draft202012Validator(schema).iter_errors({"to": "a", "x-trace": "1", "oops": 1})
    with translation.override("en"):
        assert schema_message(error) == 'unexpected field "oops"'
