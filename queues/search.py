"""The job list's search and filters: the admin's search box, the API's ``q`` and its
filters, and export jobs read jobs through these."""

from __future__ import annotations

import json
import re
from datetime import datetime
from uuid import UUID

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from queues.exceptions import JobPlatformError, UnknownQueue
from queues.models import Job, JobStatus
from queues.registry import handler_names
from queues.selectors import get_queue

# The job list's search box (admin) and the API's ``q``: qualifiers joined by spaces, all
# of which must hold. Each one becomes a predicate an index serves on a million jobs:
#
#   queue:email[,sms]        queue_id, resolved here      job_queue_status_idx, or the
#                                                          created_at walk (job_created_idx)
#   status:failed[,...]      JobStatus values              job_status_created_idx
#   handler:name, name*      exact, or registered names    job_name_created_idx
#                            that start with "name"
#   error:"timed out"        failed jobs' error, any case  job_failed_error_trgm (0015)
#   id:0190ab / <uuid>       a range of the UUIDv7 key     queues_job_pkey
#   user.id:7, to:"a b"      payload containment           job_payload_gin (0005)
#   <uuid> / <word>          the job / a handler name      as id: / handler:
#
# The migrations' numbers name the indexes outside Job.Meta (Postgres-only, see 0015).

SEARCH_HELP = gettext_lazy(
    "Combine with spaces: queue:email, status:failed,cancelled, handler:send-email (or "
    'send-*), error:"timed out" (failed jobs), id:0190ab12 (the start of a job id), and '
    "payload values such as user.id:7 or to:alice@example.com (quote a value with spaces: "
    'name:"A B"). A job id or a handler name alone also works.'
)

QUALIFIERS = ("queue", "status", "handler", "error", "id")
# A payload key named like a qualifier: "payload.id:7".
PAYLOAD_PREFIX = "payload."
MAX_SEARCH_TERMS = 16
MIN_ID_PREFIX = 4
# pg_trgm finds no trigram in a shorter run of letters or digits: the index would not help.
_TRIGRAM_RUN = re.compile(r"\w{3}")
_TOKEN = re.compile(r'\s*((?:[^\s"]|"(?:[^"\\]|\\.)*")+)')
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_HEX_PREFIX = re.compile(r"[0-9a-f]{1,32}")


class SearchError(JobPlatformError, ValueError):
    """A search term that cannot be read; the message names the part at fault."""


def search_condition(term: str) -> Q:
    """The condition ``term`` asks for (see SEARCH_HELP); ``SearchError`` if malformed."""
    tokens = _search_tokens(term)
    if len(tokens) > MAX_SEARCH_TERMS:
        raise SearchError(_("too many search terms (at most %(max)s)") % {"max": MAX_SEARCH_TERMS})
    condition = Q()
    statuses: set[str] | None = None  # what the status: parts leave, when there are some
    status_parts, failed_only = [], False
    for token in tokens:
        key, value, quoted = _split_token(token)
        if key is None:
            condition &= _bare_condition(token, value, quoted)
            continue
        qualifier = key.lower()
        if qualifier not in QUALIFIERS:
            if not value and not quoted:  # to: alone (to:"" searches the empty string)
                raise SearchError(_("%(part)s needs a value") % {"part": repr(token)})
            condition &= _payload_condition(token, key, value, quoted)
            continue
        lists = qualifier in ("status", "queue")  # status:failed,cancelled
        if not value or (lists and not all(value.split(","))):
            raise SearchError(_("%(part)s needs a value") % {"part": repr(token)})
        if qualifier == "status":
            wanted = _statuses(token, value)
            statuses = wanted if statuses is None else statuses & wanted
            status_parts.append(token)
        elif qualifier == "error":
            if not _TRIGRAM_RUN.search(value):
                raise SearchError(
                    _("%(part)s: give at least 3 letters or digits in a row")
                    % {"part": repr(token)}
                )
            condition &= Q(error__icontains=value)
            failed_only = True
        elif qualifier == "queue":
            condition &= Q(queue_id__in=[_queue_id(name) for name in value.split(",")])
        elif qualifier == "handler":
            condition &= _handler_condition(token, value)
        else:
            condition &= _id_condition(token, value)
    if failed_only:
        # job_failed_error_trgm holds failed jobs only: the error search says so.
        if statuses is not None and JobStatus.FAILED not in statuses:
            raise SearchError(
                _("error: searches failed jobs, which %(part)s leaves out")
                % {"part": repr(" ".join(status_parts))}
            )
        statuses = {JobStatus.FAILED.value}
    if statuses is not None:
        condition &= (
            Q(status__in=sorted(statuses)) if len(statuses) != 1 else Q(status=min(statuses))
        )
    return condition


def search_jobs(jobs: QuerySet[Job], term: str) -> QuerySet[Job]:
    """``jobs`` that match every part of ``term`` (see SEARCH_HELP); ``SearchError`` for a
    malformed term. An empty term matches every job."""
    return jobs.filter(search_condition(term)) if term and term.strip() else jobs


def _search_tokens(term: str) -> list[str]:
    """The space-separated parts of ``term``; a quoted string ("a b") stays in one."""
    tokens, pos, term = [], 0, term.strip()
    while pos < len(term):
        match = _TOKEN.match(term, pos)
        start = pos if match is None else match.start(1)
        if match is None or (match.end() < len(term) and term[match.end()] == '"'):
            part = term[start:].lstrip()
            raise SearchError(_("unclosed quote in %(part)s") % {"part": repr(part)})
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _split_token(token: str) -> tuple[str | None, str, bool]:
    """(key, value, quoted): key None for a bare word; value unquoted (JSON escapes)."""
    colon, quote = token.find(":"), token.find('"')
    if colon == -1 or -1 < quote < colon:
        return None, *_unquote(token, token)
    if colon == 0:
        raise SearchError(_("%(part)s has an empty key") % {"part": repr(token)})
    return token[:colon], *_unquote(token, token[colon + 1 :])


def _unquote(token: str, value: str) -> tuple[str, bool]:
    if not value.startswith('"'):
        if '"' in value and not value.startswith(("[", "{")):
            raise SearchError(
                _('misplaced quote in %(part)s: quote the whole value, key:"a b"')
                % {"part": repr(token)}
            )
        return value, False
    if not _QUOTED.fullmatch(value):
        raise SearchError(
            _('misplaced quote in %(part)s: quote the whole value, key:"a b"')
            % {"part": repr(token)}
        )
    try:
        return json.loads(value), True
    except ValueError:
        raise SearchError(_("%(part)s is not valid JSON") % {"part": repr(token)}) from None


def _bare_condition(token: str, value: str, quoted: bool) -> Q:
    """A job id, or a handler name (as the search box always took them)."""
    if not quoted:
        try:
            return Q(pk=UUID(value))
        except ValueError:
            pass
    return _handler_condition(token, value)


def _statuses(token: str, value: str) -> set[str]:
    wanted = {part.lower() for part in value.split(",")}
    unknown = sorted(wanted - set(JobStatus.values))
    if unknown:
        raise SearchError(
            _("unknown status %(status)s in %(part)s (statuses: %(known)s)")
            % {
                "status": repr(unknown[0]),
                "part": repr(token),
                "known": ", ".join(JobStatus.values),
            }
        )
    return wanted


def _queue_id(name: str) -> int:
    # The id, not a join on the name: the planner then knows how many jobs the queue has.
    try:
        return get_queue(name).pk
    except UnknownQueue as exc:
        raise SearchError(str(exc)) from None


def _handler_condition(token: str, value: str) -> Q:
    """An exact handler name; ``name*``: the registered handlers whose names start so
    (a LIKE 'name%' would not use job_name_created_idx under a non-C collation)."""
    if "*" not in value:
        return Q(name=value)
    prefix = value[:-1]
    if not prefix or "*" in prefix:
        raise SearchError(
            _("%(part)s: a handler name, or its start followed by one *") % {"part": repr(token)}
        )
    return Q(name__in=[name for name in handler_names() if name.startswith(prefix)])


def _id_condition(token: str, value: str) -> Q:
    """A whole job id, or the start of one: ids are UUIDv7 (time first), so a prefix is a
    range of the primary key."""
    try:
        return Q(pk=UUID(value))
    except ValueError:
        pass
    digits = value.replace("-", "").lower()
    if not _HEX_PREFIX.fullmatch(digits):
        raise SearchError(_("%(part)s is not a job id or the start of one") % {"part": repr(token)})
    if len(digits) < MIN_ID_PREFIX:
        # id:7 once searched the payload; a prefix this short would match far too much.
        raise SearchError(
            _(
                "%(part)s: give at least %(n)s characters of a job id "
                "(payload.id:%(value)s searches the payload)"
            )
            % {"part": repr(token), "n": MIN_ID_PREFIX, "value": value}
        )
    low, high = digits.ljust(32, "0"), digits.ljust(32, "f")
    return Q(pk__gte=UUID(low), pk__lte=UUID(high))


def _payload_condition(token: str, key: str, value: str, quoted: bool) -> Q:
    if key.startswith(PAYLOAD_PREFIX):
        key = key[len(PAYLOAD_PREFIX) :]
    elif "." not in key and _near_qualifier(key):
        raise SearchError(
            _(
                "unknown qualifier %(part)s (qualifiers: %(known)s; "
                "payload.%(key)s:... searches the payload)"
            )
            % {"part": repr(key + ":"), "known": ", ".join(QUALIFIERS), "key": key}
        )
    path = key.split(".")
    if not all(path):
        raise SearchError(_("%(part)s has an empty key") % {"part": repr(token)})
    if quoted:
        return Q(payload__contains=_nest(path, value))
    if value.startswith(("[", "{")):
        try:
            return Q(payload__contains=_nest(path, json.loads(value)))
        except ValueError:
            raise SearchError(_("%(part)s is not valid JSON") % {"part": repr(token)}) from None
    return _typed_or_text(path, value)


def _near_qualifier(key: str) -> bool:
    """A mistyped qualifier ("stauts", "queu"): one letter off a qualifier's name. Shorter
    keys ("i", "to", "ids") are payload keys."""
    return len(key) >= 4 and any(_one_edit_apart(key.lower(), q) for q in QUALIFIERS)


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter added, dropped, changed, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 2:
            i, j = diffs
            return j == i + 1 and a[i] == b[j] and a[j] == b[i]
        return len(diffs) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def _nest(path: list[str], value):
    for part in reversed(path):
        value = {part: value}
    return value


def _reject_constant(name: str):
    raise ValueError(name)  # NaN and Infinity are not JSON


def _typed_or_text(path: list[str], raw: str) -> Q:
    """An unquoted value matches as text, and as the JSON number, true, false or null it
    spells: user.id:7 finds {"user": {"id": 7}} and {"user": {"id": "7"}}."""
    condition = Q(payload__contains=_nest(path, raw))
    try:
        parsed = json.loads(raw, parse_constant=_reject_constant)
    except ValueError:
        return condition
    if not isinstance(parsed, str):
        condition |= Q(payload__contains=_nest(path, parsed))
    return condition


def filter_jobs(
    jobs: QuerySet[Job],
    *,
    queue: str | None = None,
    status: str | None = None,
    name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    q: str | None = None,
) -> QuerySet[Job]:
    """The filters the job list offers (admin and API): each one an indexed predicate.
    ``q`` is a search term (search_jobs); ``SearchError`` if it is malformed."""
    if queue:
        jobs = jobs.filter(queue__name=queue)
    if status:
        jobs = jobs.filter(status=status)
    if name:
        jobs = jobs.filter(name=name)
    if created_after:
        jobs = jobs.filter(created_at__gte=created_after)
    if created_before:
        jobs = jobs.filter(created_at__lt=created_before)
    if q:
        jobs = search_jobs(jobs, q)
    return jobs
