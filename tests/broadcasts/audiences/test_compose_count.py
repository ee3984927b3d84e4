"""The first compose screen of a new broadcast, before anything is saved: the recipients of
the chosen audience beside "all friends" and the messages the send consumes (issue 16), and
the endpoint compose.js asks when a choice changes."""

from __future__ import annotations

import re

from django.urls import reverse

from broadcasts.models import Category, Follower
from tests.fixtures.users import make_user

from .test_targeted_sends import drafted, town  # noqa: F401

COUNT = "broadcasts:audience_count_new"


def numbers(html: str) -> dict[str, str]:
    """What the count card says, by its test ids (number only)."""
    return {
        key: re.search(rf'data-testid="audience-{key}">(?:<[^>]+>)?\s*([\d,]+)', html).group(1)
        for key in ("total", "all", "cost")
    }


def childcare() -> str:
    return str(Category.objects.get(code="childcare_education").pk)


def test_the_first_screen_shows_recipients_and_cost_before_saving(client, town, drafter):  # noqa: F811
    Follower.objects.filter(line_user_id__in=town[:2]).update(is_staff_test_recipient=True)
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:create")).content.decode()
    assert 'data-testid="audience-panel-new"' in html
    assert reverse(COUNT) in html  # where compose.js asks again when a choice changes
    # the default choice is all friends: 60 recipients, 60 messages
    assert numbers(html) == {"total": "60", "all": "60", "cost": "60"}
    assert "下書きを保存したあとに設定できます" in html


def test_the_count_follows_the_unsaved_audience_and_categories(client, town, drafter):  # noqa: F811
    Follower.objects.filter(line_user_id__in=town[:2]).update(is_staff_test_recipient=True)
    client.force_login(drafter)
    url = reverse(COUNT)
    subscribers = client.get(url, {"audience": "subscribers", "categories": [childcare()]})
    assert subscribers.status_code == 200
    assert numbers(subscribers.content.decode()) == {"total": "60", "all": "60", "cost": "60"}
    other = str(Category.objects.exclude(code="childcare_education").first().pk)
    none = client.get(url, {"audience": "subscribers", "categories": [other]}).content.decode()
    assert numbers(none) == {"total": "0", "all": "60", "cost": "0"}
    assert "この条件に当てはまる友だちがいません" in none
    staff = client.get(url, {"audience": "staff_test"}).content.decode()
    assert numbers(staff) == {"total": "2", "all": "60", "cost": "2"}


def test_a_posted_form_with_errors_keeps_its_count(client, town, drafter):  # noqa: F811
    """A new draft refused for a missing title is shown again with the count of what was
    chosen, not the default."""
    client.force_login(drafter)
    response = client.post(
        reverse("broadcasts:create"),
        {"title": "", "audience": "subscribers", "categories": ["9" * 40]},
    )
    assert response.status_code == 400
    assert numbers(response.content.decode())["total"] == "0"


def test_a_saved_draft_shows_its_own_panel_not_the_new_one(client, town, drafter):  # noqa: F811
    b = drafted(drafter)
    client.force_login(drafter)
    html = client.get(reverse("broadcasts:edit", args=[b.pk])).content.decode()
    assert 'data-testid="audience-panel"' in html
    assert 'data-testid="audience-panel-new"' not in html


def test_who_may_ask_and_hostile_input(client, town, drafter):  # noqa: F811
    url = reverse(COUNT)
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    client.force_login(make_user("no-role", None))
    assert client.get(url).status_code == 403
    client.force_login(drafter)
    for params in (
        {"audience": "nonsense"},
        {"categories": ["x", "9" * 40, "-1"]},
        {"audience": "subscribers", "categories": ["x"]},
    ):
        assert client.get(url, params).status_code == 200
