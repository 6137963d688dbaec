"""slow_link_proxy.py DELAY_MS LISTEN:TARGET [LISTEN:TARGET ...]: a slow link for bus tests.

Forwards every TCP connection made to 127.0.0.1:LISTEN to 127.0.0.1:TARGET, holding each chunk
of bytes, in both directions, for DELAY_MS before passing it on (in order, so the stream is only
late, never reordered): what a link with that one-way latency does, for machines where netem is
not available. Prints "ready" once every port listens; runs until killed. Standard library only.
"""
import asyncio
import sys


async def pump(reader, writer, delay):
    """Copy reader to writer, each chunk delay seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data))
            if not data:
                break
    except (ConnectionError, OSError):
        await queue.put((loop.time() + delay, b""))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


def handler(target, delay):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, server_writer, delay),
                             pump(server_reader, client_writer, delay))
    return handle


async def main():
    delay = int(sys.argv[1]) / 1000.0
    servers = []
    for pair in sys.argv[2:]:
        listen, target = (int(p) for p in pair.split(":"))
        servers.append(await asyncio.start_server(handler(target, delay), "127.0.0.1", listen))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main())
