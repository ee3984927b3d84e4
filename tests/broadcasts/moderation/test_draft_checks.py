"""Clause 6 applied to the city's own drafts: the pre-send checklist warns, naming the item,
from admin-editable word lists; the reviewer sees the warnings next to the approve button."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from broadcasts import services
from broadcasts.checks import OK, WARN, run_checks
from broadcasts.models import Category, DraftRiskWordList, ProhibitedItem
from broadcasts.services import moderation

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2027, 2, 26, 1, 30, tzinfo=dt.UTC)


def checklist(text: str):
    return run_checks(
        messages=[{"type": "text", "text": text}],
        audience="all",
        category_ids=[],
        now=NOW,
        validate_with_line=False,
    )


def policy_warnings(text: str) -> dict[str, str]:
    return {r.label: r.detail for r in checklist(text) if getattr(r, "clause", "")}


@pytest.mark.parametrize(
    ("text", "label", "word"),
    [
        (
            "市議会議員選挙では〇〇候補に清き一票を。自民党の政策をご覧ください。",
            "ポリシー6(3)「政治・宗教活動」: 選挙・政治活動の可能性",
            "清き一票",
        ),
        (
            "〇〇教団の布教イベントに参加しましょう。入信は無料です。",
            "ポリシー6(3)「政治・宗教活動」: 宗教の勧誘・宣伝の可能性",
            "布教",
        ),
        (
            "駅前の〇〇商店で大売り出し！全品30%オフ、ご購入はこちら",
            "ポリシー6(5)「広告・営利目的」: 民間事業者の商業的宣伝の可能性",
            "大売り出し",
        ),
        (
            "あの業者は詐欺師です。税金泥棒に注意。",
            "ポリシー6(2)「誹謗中傷」: 差別・誹謗中傷の表現の可能性",
            "詐欺師",
        ),
    ],
)
def test_each_clause_6_risk_gets_its_named_warning(text, label, word):
    warnings = policy_warnings(text)
    assert label in warnings
    assert f"「{word}」" in warnings[label]
    assert "運用ポリシー6(" in warnings[label]
    result = next(r for r in checklist(text) if r.label == label)
    assert result.level == WARN and result.level_label == "要確認"


def test_the_issues_example_party_religion_and_sale_no_longer_pass_as_ok():
    text = (
        "〇〇党の政策説明会へ。投票をお願いします。\n"
        "〇〇教団の入信説明会も同時開催。\n"
        "会場の△△商店ではセールを実施、ご購入はこちら。"
    )
    assert set(policy_warnings(text)) == {
        "ポリシー6(3)「政治・宗教活動」: 選挙・政治活動の可能性",
        "ポリシー6(3)「政治・宗教活動」: 宗教の勧誘・宣伝の可能性",
        "ポリシー6(5)「広告・営利目的」: 民間事業者の商業的宣伝の可能性",
    }


def test_an_ordinary_announcement_gets_no_policy_warning():
    results = checklist("子育て支援センターの12月の開館日をお知らせします。")
    assert not [r for r in results if getattr(r, "clause", "")]
    assert all(r.level == OK for r in results)


def test_admins_edit_the_word_lists(admin_user):
    item = ProhibitedItem.objects.get(number=6)
    moderation.draft_word_list_save(
        word_list=DraftRiskWordList(name="差別的な表現（追加）", item=item, words="〇〇人お断り"),
        actor=admin_user,
    )
    assert "ポリシー6(6)「差別」: 差別的な表現（追加）の可能性" in policy_warnings(
        "この施設は〇〇人お断りです"
    )
    word_list = DraftRiskWordList.objects.get(name="差別的な表現（追加）")
    word_list.is_active = False
    moderation.draft_word_list_save(word_list=word_list, actor=admin_user)
    assert not policy_warnings("この施設は〇〇人お断りです")


def test_the_reviewer_sees_the_warnings_next_to_the_approve_button(client, drafter, reviewer):
    broadcast = services.broadcast_create(
        author=drafter,
        title="商店街のお知らせ",
        categories=[Category.objects.get(code="events")],
        messages=[{"type": "text", "text": "〇〇商店の大売り出し、全品割引です。"}],
    )
    services.broadcast_submit(broadcast=broadcast, actor=drafter)
    client.force_login(reviewer)
    html = client.get(reverse("broadcasts:detail", args=[broadcast.pk])).content.decode()
    form = html.split('data-testid="approve-form"')[1].split("</form>")[0]
    assert "ポリシー6(5)「広告・営利目的」: 民間事業者の商業的宣伝の可能性" in form
    assert form.index('data-testid="approve-policy-warnings"') < form.index("この内容で承認する")
