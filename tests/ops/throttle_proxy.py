"""A throttling TCP proxy on loopback, to slow the gateway stream for real.

``python -m tests.ops.throttle_proxy --listen 127.0.0.1:P --target 127.0.0.1:Q --rate BYTES``

Bytes from the gateway to the sidecar pass at full speed until SIGUSR1; from then on at most
``--rate`` bytes a second (a token bucket: the proxy stops reading, so TCP and HTTP/2 flow
control push back on the handler exactly as a slow sidecar would) until SIGUSR2. The sidecar's
answers are never slowed. A failed connection to the target closes the gateway's connection.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

CHUNK = 4096


class Throttle:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.on = False
        self._tokens = 0.0
        self._at = time.monotonic()

    async def take(self, n: int) -> None:
        if not self.on:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(float(self.rate), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= n:
                self._tokens -= n
                return
            await asyncio.sleep((n - self._tokens) / self.rate)


async def pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, throttle: Throttle | None
) -> None:
    try:
        while data := await reader.read(CHUNK):
            if throttle is not None:
                await throttle.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(listen: str, target: str, rate: int) -> None:
    throttle = Throttle(rate)
    loop = asyncio.get_running_loop()

    def set_on(on: bool) -> None:
        throttle.on = on
        print(f"throttle {'on' if on else 'off'}", flush=True)

    loop.add_signal_handler(signal.SIGUSR1, set_on, True)
    loop.add_signal_handler(signal.SIGUSR2, set_on, False)
    thost, tport = target.rsplit(":", 1)

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection(thost, int(tport))
        except OSError:
            w.close()
            return
        await asyncio.gather(pipe(r, uw, throttle), pipe(ur, w, None))

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, host, int(port))
    print(f"proxy {listen} -> {target}, {rate} B/s when throttled", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--rate", type=int, default=65536)
    a = p.parse_args()
    for addr in (a.listen, a.target):
        if not addr.startswith(("127.", "localhost:", "[::1]:")):
            raise SystemExit(f"{addr}: loopback only")
    asyncio.run(main(a.listen, a.target, a.rate))
