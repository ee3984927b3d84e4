"""Public pages: open without login, the account's identity, notices, the policy text."""

from __future__ import annotations

import pytest
from django.urls import reverse

from broadcasts import policy
from broadcasts.models import PublicNotice
from broadcasts.services import citizens

pytestmark = pytest.mark.django_db


def test_account_page_is_public_and_names_the_account(client):
    response = client.get(reverse("broadcasts:public_account"))
    assert response.status_code == 200
    html = response.content.decode()
    for expected in (
        "柏市役所",
        "@kashiwa_shi",
        "https://line.me/R/ti/p/@kashiwa_shi",
        "企画部DX推進課",
        "広報部広報広聴課",
        reverse("broadcasts:public_qr"),
        reverse("broadcasts:public_policy"),
    ):
        assert expected in html
    assert "<script" not in html  # works without JavaScript


def test_qr_code_is_an_svg_of_the_add_friend_url(client):
    response = client.get(reverse("broadcasts:public_qr"))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    body = response.content.decode()
    assert body.startswith("<svg") and "<title>" in body
    assert "https://line.me/R/ti/p/@kashiwa_shi" in body
    assert "public" in response["Cache-Control"]


def test_only_published_notices_are_shown(client, admin_user):
    draft = PublicNotice(title="下書きのお知らせ", body="まだ出さない")
    citizens.public_notice_save(notice=draft, actor=admin_user)
    live = PublicNotice(
        title="「柏市役所」を名乗る偽アカウントにご注意ください",
        body="IDが異なるアカウントから\nメッセージが届いています。",
        is_published=True,
    )
    citizens.public_notice_save(notice=live, actor=admin_user)
    html = client.get(reverse("broadcasts:public_account")).content.decode()
    assert "偽アカウントにご注意ください" in html
    assert "IDが異なるアカウントから<br>メッセージが届いています。" in html
    assert "下書きのお知らせ" not in html


def test_policy_page_has_text_dates_and_history(client):
    response = client.get(reverse("broadcasts:public_policy"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "柏市公式 LINE アカウント運用ポリシー" in html
    assert "令和3年8月15日" in html and "令和5年3月17日" in html
    assert 'datetime="2021-08-15"' in html and 'datetime="2023-03-17"' in html
    assert "変更履歴" in html
    # every numbered clause of the seed text is on the page
    headings = [s.heading for s in policy.policy_sections()]
    assert headings[0] == "1 目的" and headings[-1] == "附則" and len(headings) == 11
    for heading in headings:
        assert heading in html
    assert "自動応答サービスによる応答を行う場合を除き" in html
    assert "LINE 株式会社が決める利用規約に反するもの" in html


def test_public_pages_refuse_post(client):
    assert client.post(reverse("broadcasts:public_account")).status_code == 405
