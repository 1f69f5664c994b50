"""How clients register themselves: dynamic client registration (RFC 7591) and
its management protocol (RFC 7592), in ``dcr``. The HTTP side is
``web.registration``; storage is ``storage.clients``."""
