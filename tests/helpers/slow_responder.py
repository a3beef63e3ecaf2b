#!/usr/bin/env python3
"""An ICMP echo responder whose delay can be changed while it runs.

Usage: slow_responder.py DELAY_FILE
Run it in the responder's namespace with the kernel's own echo replies turned off
(sysctl net.ipv4.icmp_echo_ignore_all=1). It answers every IPv4 echo request after the delay in
milliseconds written in DELAY_FILE (read for each request; 0 when the file is missing). It stops
by itself after an hour at the latest.
"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from icmp import checksum  # noqa: E402




def delay_ms(path: str) -> float:
    try:
        with open(path) as f:
            return float(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def main() -> None:
    path = sys.argv[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(1.0)
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        try:
            data, (src, _) = s.recvfrom(2048)
        except socket.timeout:
            continue
        ihl = (data[0] & 0x0F) * 4
        icmp = data[ihl:]
        if len(icmp) < 8 or icmp[0] != 8:
            continue
        reply = bytes([0, 0, 0, 0]) + icmp[4:]
        reply = reply[:2] + struct.pack("!H", checksum(reply)) + reply[4:]
        d = delay_ms(path) / 1000.0
        threading.Timer(d, lambda r=reply, a=src: s.sendto(r, (a, 0))).start()


if __name__ == "__main__":
    main()
