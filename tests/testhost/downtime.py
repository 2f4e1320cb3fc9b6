#!/usr/bin/env python3
"""Measures docker API downtime of a command, inside a test host.

Pings GET /_ping on /run/docker.sock every 5 ms while CMD runs and prints the longest stretch
without an answer (from the last answered ping before it to the first one after it), in ms.
Usage: downtime.py CMD [ARGS...]
"""
import socket
import subprocess
import sys
import threading
import time


def ping():
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.5)
        s.connect("/run/docker.sock")
        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] and data.endswith(b"OK")
    except OSError:
        return False


def main():
    stop = threading.Event()
    answered = []

    def loop():
        while not stop.is_set():
            t = time.monotonic()
            if ping():
                answered.append(t)
            time.sleep(0.005)

    th = threading.Thread(target=loop)
    th.start()
    time.sleep(0.2)
    rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    stop.set()
    th.join()
    gaps = [b - a for a, b in zip(answered, answered[1:])]
    print(f"{max(gaps) * 1000:.0f} rc={rc}")


if __name__ == "__main__":
    main()
