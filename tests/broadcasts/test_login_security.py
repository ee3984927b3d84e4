"""Login throttling (django-axes) and the audit rows for authentication events."""

from __future__ import annotations

from django.urls import reverse

from broadcasts.models import BroadcastEvent
from tests.fixtures.users import PASSWORD


def test_ten_bad_passwords_lock_the_account_and_the_lockout_is_audited(client, drafter):
    url = reverse("login")
    for _ in range(9):
        response = client.post(url, {"username": "drafter", "password": "wrong-password"})
        assert response.status_code == 200
        assert "正しいユーザー名とパスワードを入力してください" in response.content.decode()
    response = client.post(url, {"username": "drafter", "password": "wrong-password"})
    assert response.status_code == 429
    assert "ログインが制限されています" in response.content.decode()
    # Even the right password is refused now.
    response = client.post(url, {"username": "drafter", "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    assert BroadcastEvent.objects.filter(verb="login_failed").count() >= 10
    locked = BroadcastEvent.objects.filter(verb="login_locked_out")
    assert locked.exists()
    assert {e.data["username"] for e in locked} == {"drafter"}
    # No audit row carries a password.
    for event in BroadcastEvent.objects.all():
        assert "wrong-password" not in str(event.data)
        assert PASSWORD not in str(event.data)


def test_other_accounts_are_not_locked_by_one_users_mistakes(client, drafter, reviewer):
    url = reverse("login")
    for _ in range(10):
        client.post(url, {"username": "drafter", "password": "wrong-password"})
    response = client.post(url, {"username": "reviewer", "password": PASSWORD})
    assert response.status_code == 302
    assert BroadcastEvent.objects.filter(verb="login", actor=reviewer).exists()
