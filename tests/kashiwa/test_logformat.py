import json
import logging

from kashiwa.logformat import JsonFormatter


def test_json_log_lines_carry_level_logger_message_and_extras():
    record = logging.LogRecord(
        "broadcasts.services.sending",
        logging.WARNING,
        __file__,
        1,
        "broadcast %s stopped",
        (42,),
        None,
    )
    record.broadcast_id = 42
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "broadcasts.services.sending"
    assert entry["message"] == "broadcast 42 stopped"
    assert entry["broadcast_id"] == 42
    assert entry["time"].endswith("+00:00")


def test_exceptions_are_kept_in_one_line():
    try:
        raise ValueError("壊れた入力")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "壊れた入力" in json.loads(line)["exception"]
