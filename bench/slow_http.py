"""A local HTTP server that answers every GET after a fixed wait (HTTP/1.1, keep-alive).

    python -m bench.slow_http --port P --wait-ms 50

The I/O-bound job of the ``io`` scenario: each job GETs it once, the same for every system.
Prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def serve(port: int, wait: float) -> None:
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                await asyncio.sleep(wait)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(one, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--wait-ms", type=float, default=50)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.wait_ms / 1000))


if __name__ == "__main__":
    main()
