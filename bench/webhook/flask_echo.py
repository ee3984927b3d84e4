"""line-bot-sdk's Flask echo example, for comparison (bench-only; Flask is not an app dependency).

Written to follow line-bot-sdk-python ``examples/flask-echo/app.py``: verify the signature,
log the body, and for each text message reply with the same text through the reply API,
creating an ``ApiClient`` per event as the example does. It uses the SDK's ``WebhookHandler``
(the decorator-based dispatcher) rather than the example's ``WebhookParser``; both verify the
signature the same way. ``LINE_API_HOST`` points the client at the bench's LINE sandbox.
``BENCH_FLASK_REPLY=0`` skips the reply call (signature check and parsing only)."""

from __future__ import annotations

import os

from flask import Flask, abort, request
from linebot.v3 import WebhookHandler
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import (
    ApiClient,
    Configuration,
    MessagingApi,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.webhooks import MessageEvent, TextMessageContent

app = Flask(__name__)

handler = WebhookHandler(os.environ["LINE_CHANNEL_SECRET"])
configuration = Configuration(
    host=os.environ.get("LINE_API_HOST", "https://api.line.me"),
    access_token=os.environ["LINE_CHANNEL_ACCESS_TOKEN"],
)
REPLY = os.environ.get("BENCH_FLASK_REPLY", "1") == "1"


@app.route("/callback", methods=["POST"])
def callback():
    signature = request.headers["X-Line-Signature"]
    body = request.get_data(as_text=True)
    app.logger.info("Request body: " + body)
    try:
        handler.handle(body, signature)
    except InvalidSignatureError:
        abort(400)
    return "OK"


@handler.add(MessageEvent, message=TextMessageContent)
def handle_message(event):
    if not REPLY:
        return
    with ApiClient(configuration) as api_client:
        line_bot_api = MessagingApi(api_client)
        line_bot_api.reply_message_with_http_info(
            ReplyMessageRequest(
                reply_token=event.reply_token, messages=[TextMessage(text=event.message.text)]
            )
        )
