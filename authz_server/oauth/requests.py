"""An Authlib request built from already-normalized parameters.

RFC 6749 §3.1/§3.2: a parameter sent with an empty value is treated as absent,
and a parameter may not be sent twice (``resource`` may, RFC 8707 §2). Parsing
happens once here, so a parked authorization request can be resumed later from
its stored parameters.
"""
from __future__ import annotations

from collections import defaultdict
from urllib.parse import quote

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request

MULTI_VALUED = {"resource"}


def shown(name: str) -> str:
    """A parameter name as it may appear in error_description: RFC 6749 §5.2
    allows only printable ASCII without '"' and '\\', so anything else is
    percent-encoded (ordinary names are unchanged)."""
    return quote(name[:64], safe="")


def split_params(multidict) -> tuple[dict, dict, list[str]]:
    """(single values, lists, names sent more than once)."""
    lists: dict[str, list] = defaultdict(list)
    for key in multidict.keys():
        for value in multidict.getlist(key):
            if value != "":
                lists[key].append(value)
    duplicates = sorted(k for k, v in lists.items() if len(v) > 1 and k not in MULTI_VALUED)
    single = {k: v[0] for k, v in lists.items()}
    return single, dict(lists), duplicates


class ParamsPayload(OAuth2Payload):
    def __init__(self, single: dict, lists: dict):
        self._data = single
        self._lists = defaultdict(list, lists)

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return self._lists


class ParamsRequest(OAuth2Request):
    def __init__(self, method, uri, headers, single: dict, lists: dict):
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = ParamsPayload(single, lists)
        self._single = single

    @property
    def args(self):
        return self._single

    @property
    def form(self):
        return self._single
