#!/usr/bin/env python3
"""A TCP echo pair for failover tests.

    tcp_echo.py server ADDR PORT   echo every byte back, one connection at a time, for at most 10 min
    tcp_echo.py client ADDR PORT   connect without binding (the kernel picks the source), print
                                   "local IP PORT", then for every line on stdin send it and print
                                   "echo LINE" when it came back (or "error WHY" and exit)
"""
import socket
import sys
import time


def server(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    s.settimeout(600)
    conn, _ = s.accept()
    conn.settimeout(600)
    while True:
        data = conn.recv(4096)
        if not data:
            return
        conn.sendall(data)


def client(addr, port):
    deadline = time.monotonic() + 10
    while True:
        try:
            c = socket.create_connection((addr, port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    c.settimeout(30)
    ip, lport = c.getsockname()[:2]
    print(f"local {ip} {lport}", flush=True)
    for line in sys.stdin:
        msg = line.strip().encode()
        try:
            c.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = c.recv(4096)
                if not chunk:
                    raise OSError("closed by the peer")
                got += chunk
            print(f"echo {got.decode()}", flush=True)
        except OSError as e:
            print(f"error {e}", flush=True)
            return


if __name__ == "__main__":
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server(addr, port) if mode == "server" else client(addr, port)
