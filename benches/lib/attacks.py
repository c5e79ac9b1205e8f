#!/usr/bin/env python3
"""The hostile tenant of benches/hostile.sh: the attacks of issue 10 against a router on
loopback, all at once, each bounded in count and in time, then a summary line.

    attacks.py --api http://127.0.0.1:PORT --syslog 127.0.0.1:PORT --key APP_KEY \
               --app evil --token t.… --seconds 20 [--scale 1.0]

Every attack talks to 127.0.0.1 only. The app key and token are the attacker's own (an app
of its own on the shared router): what it may do, it does as hard as it can.
"""

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit

RESULTS = Counter()


def note(what, status):
    RESULTS[f"{what}:{status}"] += 1


async def http(host, port, method, path, key, body=b"", ctype="application/json"):
    """One request on its own connection; the status code (0 when the connection failed)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except Exception:
        return 0
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except Exception:
        return 0
    finally:
        writer.close()


async def hold(host, port, first=b"", seconds=10.0):
    """Opens a connection, sends `first`, and holds it (reading nothing) for `seconds`; says
    whether the router closed it first."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except Exception:
        return "refused"
    try:
        if first:
            writer.write(first)
            await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), seconds)
        while data:
            data = await asyncio.wait_for(reader.read(65536), seconds)
        return "closed"
    except asyncio.TimeoutError:
        return "held"
    except Exception:
        return "closed"
    finally:
        writer.close()


async def deep_filters(a, n):
    deep = json.dumps({"filter": "(" * 2000 + "a=1" + ")" * 2000}).encode()
    bangs = json.dumps({"filter": "!" * 3000 + "a"}).encode()
    for i in range(n):
        body = deep if i % 2 == 0 else bangs
        note("deep_filter", await http(*a.api, "POST", f"/apps/{a.app}/log-sessions", a.key, body))


async def session_flood(a, n):
    body = json.dumps({"filter": "a=" + "x" * 60_000, "tail": True}).encode()
    for _ in range(n):
        note("session_flood", await http(*a.api, "POST", f"/apps/{a.app}/log-sessions", a.key, body))


async def token_churn(a, n):
    for i in range(n):
        body = json.dumps({"name": f"churn{i}"}).encode()
        note("token_churn", await http(*a.api, "POST", f"/apps/{a.app}/tokens", a.key, body))


async def stalled_body(a, megabytes):
    """`POST /logs` with a valid token: chunked, `megabytes` of frames, then silence."""
    host, port = a.api
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except Exception:
        return note("stalled_body", "refused")
    auth = f"Authorization: Bearer {a.token}\r\n"
    writer.write(
        (f"POST /logs HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/logplex-1\r\n"
         "Transfer-Encoding: chunked\r\n\r\n").encode()
    )
    msg = f"<190>1 2026-11-21T12:00:00Z host {a.token} web.1 - " + "y" * 900
    frame = f"{len(msg)} {msg}".encode()
    chunk = frame * 64
    try:
        for _ in range(megabytes * (1 << 20) // len(chunk)):
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await asyncio.wait_for(writer.drain(), 10)
        line = await asyncio.wait_for(reader.readline(), a.seconds)
        note("stalled_body", int(line.split()[1]) if line.startswith(b"HTTP/") else "closed")
    except asyncio.TimeoutError:
        note("stalled_body", "held")
    except Exception:
        note("stalled_body", "closed")
    finally:
        writer.close()


async def idle(a, where, n, first=b""):
    results = await asyncio.gather(*(hold(*where, first, a.seconds) for _ in range(n)))
    for r in results:
        note(f"idle_{'api' if where == a.api else 'syslog'}", r)


async def drain_loop(a):
    """A drain aimed at the router's own syslog port (one: a second to the same URL is a
    duplicate), then lines for it to carry around."""
    host, port = a.syslog
    body = json.dumps({"url": f"syslog://{host}:{port}"}).encode()
    note("drain_loop_add", await http(*a.api, "POST", f"/apps/{a.app}/log-drains", a.key, body))
    try:
        _, writer = await asyncio.open_connection(host, port)
        for i in range(100):
            msg = f"<190>1 2026-11-21T12:00:00Z host {a.token} web.1 - loop n={i}"
            writer.write(f"{len(msg)} {msg}".encode())
        await writer.drain()
        writer.close()
    except Exception:
        note("drain_loop_send", "failed")


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--syslog", required=True, type=addr)
    p.add_argument("--key", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--scale", type=float, default=1.0)
    a = p.parse_args()
    u = urlsplit(a.api)
    a.api = (u.hostname, u.port)
    n = lambda count: max(1, int(count * a.scale))  # noqa: E731
    start = time.monotonic()
    # The drain loop first: once the idle sockets below hold this address's share of the
    # syslog listener, the attacker's own sender would be refused too.
    await drain_loop(a)
    await asyncio.gather(
        deep_filters(a, n(200)),
        session_flood(a, n(3000)),
        token_churn(a, n(5000)),
        asyncio.gather(*(stalled_body(a, 4) for _ in range(n(200)))),
        idle(a, a.api, n(2000)),
        idle(a, a.syslog, n(4096)),
    )
    summary = " ".join(f"{k}={v}" for k, v in sorted(RESULTS.items()))
    print(f"result seconds={time.monotonic() - start:.1f} {summary}")


if __name__ == "__main__":
    asyncio.run(main())
