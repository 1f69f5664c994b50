"""Per-request SQL statement counter for the peer (enabled by PEER_SQL_COUNT=1).

Counts every statement Django sends through a cursor (execute/executemany),
which is what SQLAlchemy's before_cursor_execute sees on our side. Transaction
control the driver issues by itself (BEGIN/COMMIT) is not counted by either.
"""
import sys

from django.db import connections


class SqlCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        count = [0]

        def wrapper(execute, sql, params, many, context):
            count[0] += 1
            return execute(sql, params, many, context)

        with connections["default"].execute_wrapper(wrapper):
            response = self.get_response(request)
        grant_type = request.POST.get("grant_type", "-") if request.method == "POST" else "-"
        print(
            f"sql_count path={request.path} grant_type={grant_type} statements={count[0]}",
            file=sys.stderr,
            flush=True,
        )
        return response
