"""Send ``rate`` deliveries per second for ``seconds`` (open loop) and print the latencies as JSON.

python -m bench.paced_client URL RATE SECONDS [CONNECTIONS]
"""

import asyncio
import json
import sys
from dataclasses import asdict

from bench.common import BODY, aiohttp_load


def main() -> None:
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    connections = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    result = asyncio.run(aiohttp_load(url, connections, seconds, BODY.read_bytes(), rate=rate))
    print("RESULT " + json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()
