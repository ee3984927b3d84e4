"""Template helpers for the staff UI: ``{% load kashiwa %}``.

- ``{% url_if_exists "broadcasts:list" as u %}``: the URL, or "" when the name does not resolve
  (yet), so navigation shows a page only once it exists.
- ``{% nav_current u %}``: ``aria-current="page"`` when the request is on that page.
- ``{{ dt|jst }}``: ``12/1(月) 8:30`` in Asia/Tokyo, whatever the active time zone
  (``{{ dt|jst:"time" }}``: ``8:30``).
- ``{% status_badge broadcast %}`` (or a status value): a badge with the state's colour *and* word.
- ``{{ user|role_names }}``: the user's staff roles (起案者, 広報担当, 承認者, 管理者) in that order.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from django import template
from django.contrib.auth.models import AnonymousUser
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, pgettext_lazy

from broadcasts import roles, schedule
from broadcasts.models import Broadcast, User

register = template.Library()

JST = ZoneInfo("Asia/Tokyo")

# Role names are stored as Japanese group names; these let the English UI show them in English.
ROLE_LABELS = {
    roles.DRAFTER: pgettext_lazy("role", "起案者"),
    roles.REVIEWER: pgettext_lazy("role", "広報担当"),
    roles.SUPERVISOR: pgettext_lazy("role", "承認者"),
    roles.ADMIN: pgettext_lazy("role", "管理者"),
}


@register.simple_tag
def url_if_exists(viewname: str, *args: object, **kwargs: object) -> str:
    """Reverse ``viewname``; return "" instead of raising when it does not exist."""
    try:
        return reverse(viewname, args=args or None, kwargs=kwargs or None)
    except NoReverseMatch:
        return ""


@register.simple_tag(takes_context=True)
def nav_current(context: template.Context, url: str, *, exact: bool = False) -> SafeString:
    """``aria-current="page"`` for the nav link of the page being shown.

    The site root matches only itself; other links also match their sub-pages unless ``exact``."""
    request = context.get("request")
    if not url or request is None:
        return SafeString("")
    path = request.path
    matches = path == url if (exact or url == "/") else path.startswith(url)
    return SafeString(' aria-current="page"') if matches else SafeString("")


#: The weekday as the reader's language writes it (schedule.WEEKDAY_KANJI stays the domain's:
#: hold reasons and audit rows are Japanese whoever reads them).
WEEKDAYS = (
    pgettext_lazy("weekday", "月"),
    pgettext_lazy("weekday", "火"),
    pgettext_lazy("weekday", "水"),
    pgettext_lazy("weekday", "木"),
    pgettext_lazy("weekday", "金"),
    pgettext_lazy("weekday", "土"),
    pgettext_lazy("weekday", "日"),
)


def display_date(d: date) -> str:
    """``12/1(月)`` in Japanese, ``12/1(Tue)`` in English: ``schedule.format_date``'s shape."""
    return f"{d.month}/{d.day}({WEEKDAYS[d.weekday()]})"


@register.filter
def jst(value: datetime | date | None, arg: str = "") -> str:
    """``12/1(月) 8:30``: month/day, weekday (in the reader's language), 24-hour time,
    Asia/Tokyo.

    ``{{ dt|jst:"time" }}`` gives ``8:30``; a ``date`` gives ``12/1(月)``; ``None`` or "" gives "".
    In Japanese this is exactly ``schedule.format_jst``, so screens and hold reasons agree."""
    if value in (None, ""):
        return ""
    if isinstance(value, datetime):
        if timezone.is_naive(value):  # not expected with USE_TZ; read it as Tokyo time
            value = timezone.make_aware(value, JST)
        local = schedule.to_jst(value)
        if arg == "time":
            return schedule.format_hm(local)
        return f"{display_date(local.date())} {schedule.format_hm(local)}"
    return display_date(value)


def status_label(value: str) -> str:
    try:
        return str(Broadcast.Status(value).label)
    except ValueError:
        return value


@register.simple_tag
def status_badge(broadcast_or_status: Broadcast | str) -> SafeString:
    """``<span class="badge kw-status-<value>">label</span>``; the word is always shown."""
    value = getattr(broadcast_or_status, "status", broadcast_or_status)
    value = str(value or "")
    return format_html('<span class="badge kw-status-{}">{}</span>', value, status_label(value))


@register.simple_tag
def broadcast_statuses() -> list[str]:
    """Every status value in lifecycle order, e.g. for a legend: ``{% broadcast_statuses as s %}``."""
    return list(Broadcast.Status.values)


def role_names(user: User | AnonymousUser | None) -> list[str]:
    """The staff roles a user holds, in the order of DESIGN.md §2, translated for display."""
    if user is None or not user.is_authenticated:
        return []
    held = {group.name for group in user.groups.all()}
    names = [str(ROLE_LABELS[role]) for role in roles.ROLES if role in held]
    if not names and user.is_superuser:
        names.append(gettext("システム管理者"))
    return names


register.filter("role_names", role_names)


@register.filter
def policy_letter(category: object) -> str:
    """A category's letter under policy 4(1) (ア … サ), or "" if the policy does not list it."""
    from broadcasts.policy import category_wording

    return category_wording(str(getattr(category, "code", "")))[0]


@register.filter
def policy_wording(category: object) -> str:
    """A category's full wording under policy 4(1) (「防災・防犯に関する情報」), for the screens
    where staff choose categories; its short label where the policy lists none."""
    from broadcasts.policy import category_wording

    wording = category_wording(str(getattr(category, "code", "")))[1]
    return wording or str(getattr(category, "label", ""))


@register.filter
def clause_risks(checklist: list[object] | None) -> list[object]:
    """The checklist's policy-6 warnings (results that name a clause item)."""
    return [c for c in checklist or [] if getattr(c, "clause", "")]
