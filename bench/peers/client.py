"""The peers bench's Python row: the workload with the `websockets` library (asyncio).

CONNECTIONS connections at once, each: connect, ROUNDS x (send {"type":"ping"}, wait for
the next frame, parse it as JSON, check its type), then close. Prints one JSON line like
peers-client: round trips, failures, seconds, msg/s, p50/p99/max in milliseconds.

python3 client.py URL CONNECTIONS ROUNDS
"""

import asyncio
import json
import sys
import time

import websockets

PAYLOAD = '{"type":"ping"}'
DEADLINE = 10.0


async def connection(url, rounds, latencies):
    async with websockets.connect(url, open_timeout=DEADLINE, close_timeout=DEADLINE) as ws:
        for _ in range(rounds):
            sent = time.perf_counter()
            await ws.send(PAYLOAD)
            echo = await asyncio.wait_for(ws.recv(), DEADLINE)
            if json.loads(echo)["type"] != "ping":
                raise ValueError(f"unexpected echo {echo}")
            latencies.append(time.perf_counter() - sent)


async def main():
    url = sys.argv[1]
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    latencies = []
    started = time.perf_counter()
    results = await asyncio.gather(
        *(connection(url, rounds, latencies) for _ in range(connections)),
        return_exceptions=True,
    )
    seconds = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures[:3]:
        print(f"connection failed: {failure!r}", file=sys.stderr)
    latencies.sort()

    def ms(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    print(json.dumps({
        "connections": connections,
        "round_trips": len(latencies),
        "failures": len(failures),
        "seconds": seconds,
        "msg_per_s": len(latencies) / seconds,
        "p50_ms": ms(0.50),
        "p99_ms": ms(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
    }))


asyncio.run(main())
