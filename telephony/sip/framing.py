"""Cut a SIP byte stream (TCP) into messages by Content-Length (RFC 3261 §18.3, §7.5).

Also recognises the RFC 5626 §3.5.1 CRLF keep-alive ("\\r\\n\\r\\n" ping, "\\r\\n" pong)
that softphones send on idle connections. A header section or body over the size
limit, or a Content-Length that is not a number, is a :class:`RemoteProtocolError`
carrying the Via, From, To, Call-ID and CSeq salvaged from the head: the connection
cannot be resynchronised and must be closed after answering (513 or 400). ``feed``
raises nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from telephony.sip.message import MAX_MESSAGE_SIZE, RemoteProtocolError, salvage_head

__all__ = ["KeepAlivePing", "StreamFramer"]


@dataclass(frozen=True, slots=True)
class KeepAlivePing:
    """A double-CRLF ping: answer with a single CRLF."""


class StreamFramer:
    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[bytes | KeepAlivePing]:
        self._buf += data
        out: list[bytes | KeepAlivePing] = []
        while True:
            # Leading CRLFs between messages are keep-alives or noise (§7.5).
            lead = 0
            while lead < len(self._buf) and self._buf[lead] in (13, 10):
                lead += 1
            if lead:
                if bytes(self._buf[:lead]).count(b"\r\n") >= 2 or self._buf[:lead] == b"\n\n":
                    out.append(KeepAlivePing())
                del self._buf[:lead]
            if not self._buf:
                return out
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self._max:
                    raise self._error(f"header section over {self._max} bytes", 513)
                return out
            head = bytes(self._buf[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, sep, value = line.partition(b":")
                if sep and name.strip().lower() in (b"content-length", b"l"):
                    v = value.strip()
                    if not v.isdigit():
                        raise self._error(f"Content-Length {v[:20].decode('ascii', 'replace')!r} is not a number", 400)
                    length = int(v)
                    break
            total = end + 4 + length
            if total > self._max:
                raise self._error(f"message of {total} bytes exceeds the {self._max}-byte limit", 513)
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]

    def _error(self, message: str, status: int) -> RemoteProtocolError:
        headers, is_request = salvage_head(bytes(self._buf[: self._max]), self._max)
        return RemoteProtocolError(message, status_hint=status, headers=headers, is_request=is_request)
