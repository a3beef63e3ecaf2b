#!/usr/bin/env python3
"""Sends ICMP echo replies that imitate ipmpd's probe replies, altered in one way, to DST.

Usage: forge_reply.py DST ICMP_ID KIND [COUNT]
KIND: magic | version | cksum | truncated | badtag | ping
Run it inside the responder's namespace; the host's XDP program must count or reject each.
"""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from icmp import checksum  # noqa: E402




def payload(kind: str, ifindex: int) -> bytes:
    magic, version, cksum = 0x4950_4D50, 1, 1
    if kind == "magic":
        magic = 0xDEADBEEF
    elif kind == "version":
        version = 9
    elif kind == "cksum":
        cksum = 7
    elif kind == "ping":
        return b"abcdefghijklmnopqrstuvwabcdefghi"
    # magic, version, checksum type, message type, ifindex, group, send time, kernel tx, tag
    hdr = struct.pack("!IBBHIIQQQ", magic, version, cksum, 0x1234, ifindex, 0, 1, 2, 0xBAD7A6)
    return hdr[:20] if kind == "truncated" else hdr


def main() -> None:
    dst, icmp_id, kind = sys.argv[1], int(sys.argv[2], 0), sys.argv[3]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for seq in range(1, count + 1):
        body = payload(kind, icmp_id & 0xFF)
        pkt = struct.pack("!BBHHH", 0, 0, 0, icmp_id, seq) + body
        pkt = pkt[:2] + struct.pack("!H", checksum(pkt)) + pkt[4:]
        s.sendto(pkt, (dst, 0))


if __name__ == "__main__":
    main()
