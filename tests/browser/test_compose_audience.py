"""The first compose screen in Chromium (issue 16): before a new broadcast is saved, the
drafter sees how many friends the chosen audience reaches beside "all friends" and how many
messages the send consumes, and both follow the audience and categories as they are chosen.
Desktop and 390 px wide, with axe-core."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from broadcasts.models import Category, Follower
from broadcasts.services.audiences import followers_bits_rebuild
from line_sandbox.state import synthetic_user_id
from tests.fixtures.browser import assert_accessible, login_as, url

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
def test_a_new_draft_sees_recipients_and_cost_as_it_chooses(
    page, live_server, line_sandbox, drafter, viewport
):
    if viewport == "phone":
        page.set_viewport_size(PHONE)
    category = Category.objects.get(code="childcare_education")
    followers = [
        Follower.objects.create(line_user_id=synthetic_user_id(932_000 + i)) for i in range(9)
    ]
    for f in followers[:4]:
        f.categories.add(category)
    followers[8].is_staff_test_recipient = True
    followers[8].save(update_fields=["is_staff_test_recipient"])
    followers_bits_rebuild()  # the choices were written in bulk, not through the services

    login_as(page, live_server, drafter)
    page.goto(url(live_server, "broadcasts:create"))
    panel = page.get_by_test_id("audience-panel-new")
    total, cost = panel.get_by_test_id("audience-total"), panel.get_by_test_id("audience-cost")
    # すべての友だち is the default choice
    expect(total).to_have_text("9")
    expect(panel.get_by_test_id("audience-all")).to_contain_text("9")
    expect(cost).to_contain_text("9")
    assert_accessible(page)

    chip = page.locator(f'input[name=categories][value="{category.pk}"]')
    page.locator(f'label[for="{chip.get_attribute("id")}"]').click()
    page.locator("input[name=audience][value=subscribers]").check()
    expect(total).to_have_text("4")
    expect(cost).to_contain_text("4")
    expect(panel.get_by_test_id("audience-all")).to_contain_text("9")

    page.locator("input[name=audience][value=staff_test]").check()
    expect(total).to_have_text("1")
    expect(cost).to_contain_text("1")

    page.locator("input[name=audience][value=subscribers]").check()
    page.locator(f'label[for="{chip.get_attribute("id")}"]').click()  # no category left
    expect(total).to_have_text("0")
    expect(panel).to_contain_text("この条件に当てはまる友だちがいません。")
    panel.scroll_into_view_if_needed()
    expect(panel).to_be_in_viewport()
    if viewport == "phone":  # nothing wider than the phone: no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert_accessible(page)
