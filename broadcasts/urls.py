from django.urls import path

from .views import (
    audiences,
    calendar,
    calendar_grid,
    compose,
    dashboard,
    history,
    lists,
    message_templates,
    ops,
    progress,
    review,
    stats,
)
from .views import emergency as emergency_views
from .views import moderation as moderation_views
from .views import notifications as notification_views
from .views import official as official_views
from .views import personal_data as personal_data_views
from .views import public as public_views
from .views import richmenu as richmenu_views

app_name = "broadcasts"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("calendar/", calendar.calendar_view, name="calendar"),
    # dashboard and insight (issue 6)
    path("dashboard/<slug:part>/", dashboard.dashboard_part, name="dashboard_part"),
    path("categories.css", dashboard.category_css, name="category_css"),
    path("calendar/month/", calendar_grid.calendar_month, name="calendar_month"),
    path("calendar/week/", calendar_grid.calendar_week, name="calendar_week"),
    path("stats/", stats.stats_overview, name="stats"),
    path("stats/export.csv", stats.stats_csv, name="stats_csv"),
    path("stats/refresh/", stats.stats_refresh, name="stats_refresh"),
    path("broadcasts/<int:pk>/stats/", stats.broadcast_stats, name="broadcast_stats"),
    path(
        "broadcasts/<int:pk>/stats/refresh/",
        stats.broadcast_stats_refresh,
        name="broadcast_stats_refresh",
    ),
    path("history/", history.history, name="history"),
    path("ops/", ops.ops_view, name="ops"),
    path("history/export.csv", history.history_csv, name="history_csv"),
    # compose and review (issue 4)
    path("broadcasts/", lists.broadcast_list, name="list"),
    path("broadcasts/new/", compose.broadcast_create_view, name="create"),
    path("broadcasts/preview-time/", compose.preview_time, name="preview_time"),
    path("broadcasts/templates/", message_templates.templates_view, name="templates"),
    path("broadcasts/review/", lists.review_queue, name="review_queue"),
    path("broadcasts/<int:pk>/", review.broadcast_detail, name="detail"),
    path("broadcasts/<int:pk>/edit/", compose.broadcast_edit_view, name="edit"),
    path("broadcasts/<int:pk>/audience/", audiences.audience_edit, name="audience_edit"),
    path("broadcasts/<int:pk>/audience/count/", audiences.audience_count, name="audience_count"),
    path(
        "broadcasts/new/audience/count/",
        audiences.audience_count_new,
        name="audience_count_new",
    ),
    path("broadcasts/<int:pk>/progress/", progress.progress, name="progress"),
    path("broadcasts/<int:pk>/submit/", review.submit, name="submit"),
    path("broadcasts/<int:pk>/withdraw/", review.withdraw, name="withdraw"),
    path("broadcasts/<int:pk>/approve/", review.approve, name="approve"),
    path("broadcasts/<int:pk>/reject/", review.reject, name="reject"),
    path("broadcasts/<int:pk>/cancel/", review.cancel, name="cancel"),
    path("broadcasts/<int:pk>/test-send/", review.test_send, name="test_send"),
    # the emergency path (issue 5)
    path(
        "broadcasts/<int:pk>/emergency/approve/",
        emergency_views.emergency_approve,
        name="emergency_approve",
    ),
    path(
        "broadcasts/<int:pk>/emergency/withdraw/",
        emergency_views.emergency_withdraw,
        name="emergency_withdraw",
    ),
    path("broadcasts/<int:pk>/follow-up/<str:kind>/", emergency_views.follow_up, name="follow_up"),
    # staff alerts (issue 13)
    path("account/line/", notification_views.line_link, name="line_link"),
    path("broadcasts/<int:pk>/alert/", notification_views.alert_open, name="alert_open"),
    # official information: JMA 防災情報XML and 防災メール (issue 15)
    path("official/", official_views.official_list, name="official_list"),
    path("official/<int:pk>/", official_views.official_detail, name="official_detail"),
    # public pages, no login (issue 7)
    path("public/", public_views.account, name="public_account"),
    path("public/policy/", public_views.policy_page, name="public_policy"),
    path("public/qr.svg", public_views.qr_svg, name="public_qr"),
    # rich menus, admins (issue 7)
    path("richmenus/", richmenu_views.richmenu_list, name="richmenu_list"),
    path("richmenus/switch/", richmenu_views.richmenu_switch, name="richmenu_switch"),
    path("richmenus/<int:pk>/image/", richmenu_views.richmenu_image, name="richmenu_image"),
    path("richmenus/<int:pk>/publish/", richmenu_views.richmenu_publish, name="richmenu_publish"),
    # moderation of citizens' messages (issue 17, policy 6)
    path("moderation/", moderation_views.moderation_inbox, name="moderation_inbox"),
    path("moderation/<int:pk>/", moderation_views.moderation_message, name="moderation_message"),
    path("moderation/<int:pk>/flag/", moderation_views.moderation_flag, name="moderation_flag"),
    path(
        "moderation/<int:pk>/unflag/", moderation_views.moderation_unflag, name="moderation_unflag"
    ),
    path("moderation/<int:pk>/note/", moderation_views.moderation_note, name="moderation_note"),
    path(
        "moderation/<int:pk>/suppress/",
        moderation_views.moderation_suppress,
        name="moderation_suppress",
    ),
    path(
        "moderation/<int:pk>/measure/",
        moderation_views.moderation_measure,
        name="moderation_measure",
    ),
    path(
        "moderation/suppressions/<int:pk>/lift/",
        moderation_views.moderation_suppression_lift,
        name="moderation_suppression_lift",
    ),
    # personal data the app keeps (issue 17, policy 10), admins
    path("personal-data/", personal_data_views.personal_data, name="personal_data"),
]
