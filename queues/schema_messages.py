"""A payload's schema error in the operator's language.

jsonschema words its errors in English ("'to' is a required property"). The common
keywords are put into our own translatable sentences here; any other keyword keeps
jsonschema's text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

TYPE_WORDS = {
    "string": gettext_lazy("a string"),
    "integer": gettext_lazy("an integer"),
    "number": gettext_lazy("a number"),
    "boolean": gettext_lazy("true or false"),
    "object": gettext_lazy("an object"),
    "array": gettext_lazy("a list"),
    "null": gettext_lazy("null"),
}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _names(values) -> str:
    return ", ".join(_json(v) for v in values)


def _type_words(value) -> str:
    kinds = value if isinstance(value, list) else [value]
    return _(" or ").join(str(TYPE_WORDS.get(k, k)) for k in kinds)


def schema_message(error) -> str:
    """One sentence for a jsonschema ``ValidationError``: what is wrong with the value."""
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    if keyword == "required":
        missing = [name for name in expected if isinstance(instance, dict) and name not in instance]
        return _("%(name)s is required") % {"name": _json(missing[0] if missing else expected[0])}
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
        extra = sorted(
            k for k in instance if k not in known and not any(p.search(k) for p in patterns)
        )
        if extra:
            return _("unexpected field %(names)s") % {"names": _names(extra)}
    if keyword == "type":
        return _("must be %(type)s") % {"type": _type_words(expected)}
    if keyword == "enum":
        return _("must be one of %(values)s") % {"values": _names(expected)}
    if keyword == "const":
        return _("must be %(value)s") % {"value": _json(expected)}
    limits = {
        "minimum": _("must be at least %(limit)s"),
        "maximum": _("must be at most %(limit)s"),
        "exclusiveMinimum": _("must be more than %(limit)s"),
        "exclusiveMaximum": _("must be less than %(limit)s"),
        "minLength": _("must have at least %(limit)s characters"),
        "maxLength": _("must have at most %(limit)s characters"),
        "minItems": _("must have at least %(limit)s items"),
        "maxItems": _("must have at most %(limit)s items"),
        "pattern": _("must match the pattern %(limit)s"),
        "format": _("must be a valid %(limit)s"),
    }
    if keyword in limits:
        return limits[keyword] % {"limit": expected}
    return error.message
