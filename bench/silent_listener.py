#!/usr/bin/python3
"""Endpoints that accept TCP connections and never answer (the noisy scenario of bench/run).

  bench/silent_listener.py COUNT PORTS_FILE STATS_FILE

Listens on COUNT ports of 127.0.0.1 (each bound to port 0, so the kernel picks
free ones) and writes them to PORTS_FILE, one a line, once all are listening.
Every connection is accepted and kept open; what the client sends is read and
thrown away; nothing is ever written back. A client therefore waits for its own
request timeout. Every 0.5 s (and on SIGTERM) STATS_FILE gets, as JSON, the
connections accepted, open now and at most at once, and the request heads seen
("\\r\\n\\r\\n" sequences: a rough count of requests, enough to see how many of
a daemon's slots these endpoints hold). One thread, selectors: a few hundred
idle sockets cost it nothing, so it is never the bottleneck.
"""
import json
import os
import selectors
import signal
import socket
import sys
import time


def main():
    count, ports_file, stats_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sel = selectors.DefaultSelector()
    listeners = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
        listeners.append(s)
    tmp = ports_file + ".tmp"
    with open(tmp, "w") as fh:
        for s in listeners:
            fh.write(f"{s.getsockname()[1]}\n")
    os.rename(tmp, ports_file)

    stats = {"accepted": 0, "open": 0, "max_open": 0, "requests": 0, "closed_by_client": 0}
    tails = {}  # last 3 bytes of each connection, so a "\r\n\r\n" split over two reads still counts
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def write_stats():
        tmp = stats_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(stats, fh)
        os.rename(tmp, stats_file)

    next_stats = 0.0
    while not stop:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            if key.data == "listen":
                while True:
                    try:
                        conn, _ = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # EMFILE and the like: try again on the next event
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                    tails[conn] = b""
                    stats["accepted"] += 1
                    stats["open"] += 1
                    stats["max_open"] = max(stats["max_open"], stats["open"])
                continue
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()
                tails.pop(sock, None)
                stats["open"] -= 1
                stats["closed_by_client"] += 1
                continue
            seen = tails[sock] + data
            stats["requests"] += seen.count(b"\r\n\r\n")
            tails[sock] = seen[-3:]
        now = time.monotonic()
        if now >= next_stats:
            write_stats()
            next_stats = now + 0.5
    write_stats()
    for key in list(sel.get_map().values()):
        key.fileobj.close()


if __name__ == "__main__":
    main()
