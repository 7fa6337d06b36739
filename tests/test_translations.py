"""Chinese ships beside English: every string we mark has a zh_Hans translation, the
catalogs hold every string the sources mark, and the compiled .mo files say what the .po
files say (a fresh clone shows Chinese without compiling anything)."""

from __future__ import annotations

import ast
import gettext
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import skip_unless_ci

ROOT = Path(__file__).resolve().parent.parent
# Each app keeps its catalog in its own locale/; the templates' and the project's strings
# are in locale/ at the top (LOCALE_PATHS).
CATALOGS = {
    "queues": ROOT / "queues",
    "scheduling": ROOT / "scheduling",
    "devices": ROOT / "devices",
    "notifications": ROOT / "notifications",
    "project": ROOT,
}
APPS = ["queues", "scheduling", "devices", "notifications"]
# The project catalog's makemessages skips the apps' files (their own catalogs) and what
# ships no string of ours. Not "queues" (makemessages would skip templates/admin/queues,
# the project's, by its name) but the apps' files by path.
NOT_THE_PROJECTS = [
    *(f"{app}/*.{ext}" for app in APPS for ext in ("py", "html", "txt", "js")),
    *("bench", "tests", "var", "node_modules", ".venv", "deploy"),
]


def parse_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr (a list: one per
    plural form), fuzzy. The header (msgid "") and obsolete entries are left out."""
    entries: list[dict] = []
    entry: dict | None = None
    key = None
    fuzzy = False
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#,"):
            fuzzy = "fuzzy" in line
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith('"'):
            if key == "msgstr":
                entry["msgstr"][-1] += ast.literal_eval(line)
            else:
                entry[key] += ast.literal_eval(line)
            continue
        word, _, rest = line.partition(" ")
        value = ast.literal_eval(rest)
        starts = word == "msgctxt" or (
            word == "msgid" and not (entry and "msgctxt" in entry and "msgid" not in entry)
        )
        if starts:
            if entry and entry.get("msgid"):
                entries.append(entry)
            entry, fuzzy = {"fuzzy": fuzzy, "msgstr": []}, False
        if word.startswith("msgstr"):
            key = "msgstr"
            entry["msgstr"].append(value)
        else:
            key = word
            entry[word] = value
    if entry and entry.get("msgid"):
        entries.append(entry)
    return entries


def po_files(lang: str) -> list[Path]:
    files = []
    for base in CATALOGS.values():
        files += sorted((base / "locale" / lang / "LC_MESSAGES").glob("*.po"))
    return files


def test_every_catalog_exists_in_chinese_and_english():
    for name, base in CATALOGS.items():
        for lang in ("zh_Hans", "en"):
            po = base / "locale" / lang / "LC_MESSAGES" / "django.po"
            assert po.is_file(), f"{name}: no {lang} catalog at {po.relative_to(ROOT)}"


def test_every_msgid_has_a_chinese_translation():
    missing = []
    for po in po_files("zh_Hans"):
        for entry in parse_po(po):
            if entry["fuzzy"] or not all(s.strip() for s in entry["msgstr"]):
                missing.append(f"{po.relative_to(ROOT)}: {entry['msgid']!r}")
    assert not missing, "untranslated (or fuzzy) in zh_Hans:\n" + "\n".join(missing)


def test_placeholders_survive_translation():
    import re

    pattern = re.compile(r"%\(\w+\)[sdfi]|%[sd]|\{\w*\}")
    broken = []
    for po in po_files("zh_Hans"):
        for entry in parse_po(po):
            wanted = sorted(pattern.findall(entry["msgid"]))
            for text in entry["msgstr"]:
                if sorted(pattern.findall(text)) != wanted:
                    broken.append(f"{po.relative_to(ROOT)}: {entry['msgid']!r} -> {text!r}")
    assert not broken, "placeholders changed:\n" + "\n".join(broken)


def test_the_compiled_catalogs_match_their_sources():
    stale = []
    for po in po_files("zh_Hans"):
        mo = po.with_suffix(".mo")
        assert mo.is_file(), f"{po.relative_to(ROOT)} is not compiled (compilemessages)"
        with mo.open("rb") as handle:
            compiled = gettext.GNUTranslations(handle)
        for entry in parse_po(po):
            msgid = entry["msgid"]
            if "msgctxt" in entry:
                got = compiled.pgettext(entry["msgctxt"], msgid)
            elif "msgid_plural" in entry:
                got = compiled.ngettext(msgid, entry["msgid_plural"], 1)
            else:
                got = compiled.gettext(msgid)
            if got != entry["msgstr"][0]:
                stale.append(f"{mo.relative_to(ROOT)}: {msgid!r}")
    assert not stale, "the .mo files are older than the .po files:\n" + "\n".join(stale)


def _extract(tmp_path: Path) -> dict[str, set[str]]:
    """What makemessages finds in the sources today, per catalog (in a copy: the
    committed catalogs are not touched)."""
    if not shutil.which("xgettext"):
        skip_unless_ci("the catalog check needs GNU gettext (apt-get install gettext)")
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "__pycache__"),
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "jobplatform.settings",
        "SECRET_KEY": "x",
        "DEBUG": "1",
        "PYTHONPATH": str(copy),
    }
    found = {}
    for name, base in CATALOGS.items():
        where = copy / base.relative_to(ROOT)
        ignores = [] if name != "project" else [f"--ignore={d}" for d in NOT_THE_PROJECTS]
        for domain in ("django", "djangojs"):
            subprocess.run(
                [
                    sys.executable,
                    "-P",  # not the app's directory first: queues/selectors.py is no stdlib
                    "-m",
                    "django",
                    "makemessages",
                    "-l",
                    "zh_Hans",
                    "-d",
                    domain,
                    "--no-location",
                    *ignores,
                ],
                cwd=where,
                env=env,
                check=True,
                capture_output=True,
            )
        found[name] = {
            e["msgid"]
            for po in (where / "locale" / "zh_Hans" / "LC_MESSAGES").glob("*.po")
            for e in parse_po(po)
        }
    return found


def test_the_catalogs_hold_every_string_the_sources_mark(tmp_path):
    found = _extract(tmp_path)
    missing = []
    for name, msgids in found.items():
        base = CATALOGS[name] / "locale" / "zh_Hans" / "LC_MESSAGES"
        have = {e["msgid"] for po in base.glob("*.po") for e in parse_po(po)}
        missing += [f"{name}: {m!r}" for m in sorted(msgids - have)]
    assert not missing, (
        "marked in the sources but not in the catalogs (run makemessages, translate, "
        "compilemessages):\n" + "\n".join(missing)
    )


@pytest.mark.parametrize("lang", ["zh-hans", "en"])
def test_the_language_is_active_in_the_console(client, lang, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(admin)
    html = client.get("/admin/queues/job/", HTTP_ACCEPT_LANGUAGE=lang).content.decode()
    assert f'<html lang="{lang}"' in html
    if lang == "zh-hans":
        assert "任务" in html
